"""What the demo shows a person: its headings and lines, the results in PostgreSQL and Redis,
where to look (the pods' /metrics, the operator's view of the fleet) and what to type next."""

from __future__ import annotations

import urllib.request
from typing import cast

import psycopg2
from demo_cluster import (
    CONSUMER_PORT,
    DATABASE,
    NAMESPACE,
    SYSTEM,
    consumers,
    lag_of,
    operator_metrics_url,
    pod_addresses,
    redis_for,
    scaling_events,
)
from prometheus_client.parser import text_string_to_metric_families


def title(text: str) -> None:
    print(f"\n\033[1m{text}\033[0m", flush=True)


def say(text: str) -> None:
    print(f"  {text}", flush=True)


def report_results(env: dict[str, str], dsn: str, accepted: int) -> None:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT event_id) FROM events")
        stored, distinct = cursor.fetchone() or (0, 0)
        cursor.execute("SELECT consumer_group, count(*) FROM dlq_events GROUP BY 1 ORDER BY 1")
        dlq = cursor.fetchall()
        cursor.execute("SELECT reason, count(*) FROM dlq_events GROUP BY 1 ORDER BY 2 DESC")
        dlq_reasons = cursor.fetchall()
    connection.close()
    mark = "✓" if stored == accepted == distinct else "✗"
    say(
        f"{mark} events stored in PostgreSQL: {stored:,} of {accepted:,} accepted by the gateway "
        f"({distinct:,} distinct ids)"
    )
    say(
        f"dead-letter rows: {sum(n for _, n in dlq)} "
        f"({', '.join(f'{g.rsplit(chr(46), 1)[-1]} {n}' for g, n in dlq)}); "
        f"reasons: {', '.join(f'{r} {n}' for r, n in dlq_reasons)}"
    )

    boards = redis_for(env, 1)
    keys = sorted(
        boards.scan_iter("leaderboard:*:total_score:all_time"), key=lambda k: -boards.zcard(k)
    )
    if keys:
        top = cast("list[tuple[str, float]]", boards.zrevrange(keys[0], 0, 9, withscores=True))
        say(f"top 10 of {keys[0]!s} (Redis db 1):")
        for rank, (player, score) in enumerate(top, 1):
            print(f"      {rank:2}. {player!s:16} {score:10,.0f}")
        stats = redis_for(env, 0)
        game = str(keys[0]).split(":")[1]
        player = str(top[0][0])
        values = stats.hgetall(f"player_stats:{game}:{player}")
        say(f"player_stats:{game}:{player} (Redis db 0):")
        for field in sorted(values):
            print(f"      {field!s:24} {values[field]!s}")
    say("lag per consumer group:")
    for item in consumers():
        status = item.get("status", {})
        print(f"      {status.get('consumerGroup', '?'):34} lag {lag_of(item)}")
    say("scaling decisions:")
    for line in scaling_events() or ["(none)"]:
        print(f"      {line}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:  # noqa: S310 - loopback
            return bool(reply.status == 200)
    except OSError:
        return False


def fleet_from_metrics() -> list[str]:
    """Per EventConsumer, what the operator's /metrics says now (what a dashboard shows)."""
    url = operator_metrics_url()
    if url is None:
        return ["(no operator holds the Lease right now)"]
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - the pod subnet
        text = reply.read().decode()
    wanted = {
        "eventfleet_consumer_group_lag": "lag",
        "eventfleet_desired_replicas": "desired",
        "eventfleet_ready_replicas": "ready",
        "eventfleet_max_replicas": "ceiling",
    }
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted and sample.labels.get("namespace") == NAMESPACE:
                found.setdefault(sample.labels["name"], {})[wanted[sample.name]] = sample.value
    return [
        f"{name:12} "
        + "  ".join(f"{key} {values[key]:g}" for key in wanted.values() if key in values)
        for name, values in sorted(found.items())
    ]


def where_to_look(gateway: str) -> None:
    title("Where to look")
    say("metrics (Prometheus text), at the pods' own addresses:")
    print(f"      operator   {operator_metrics_url()}  (the Lease holder)")
    print(f"      gateway    {gateway}/metrics")
    for pod, address in sorted(
        pod_addresses(NAMESPACE, "app.kubernetes.io/part-of=eventfleet").items()
    ):
        url = f"http://{address}:{CONSUMER_PORT}/metrics"
        if address and answers(url):
            print(f"      consumer   {url:34} {pod}")
    say("the operator's view of the fleet now, from its /metrics:")
    for line in fleet_from_metrics():
        print(f"      {line}")
    say("dashboard: manifests/monitoring/eventfleet-dashboard.json (import it into Grafana)")
    say("alerts:    manifests/monitoring/alerts.yaml, explained in docs/operations.md#alerts")
    say("           with the Prometheus Operator: kubectl apply -k manifests/monitoring")
    say(f"one screen per EventConsumer: kubectl eventfleet status stats -n {NAMESPACE}")


def explore(gateway: str) -> None:
    title("Explore")
    print(f"""  source <(hack/stack env); export PATH="$PWD/.venv/bin:$PATH"   (kubectl eventfleet)
  kubectl get ec -n {NAMESPACE}                 kubectl describe ec stats -n {NAMESPACE}
  kubectl get pods,deploy,events -n {NAMESPACE}   kubectl logs -n {NAMESPACE} deploy/stats-consumer
  kubectl get pods -n {SYSTEM}       kubectl logs -n {SYSTEM} deploy/eventfleet-operator
  psql "${{EVENTFLEET_POSTGRES_DSN%/*}}/{DATABASE}"   (events, player_statistics, leaderboards, ...)
  redis-cli -u "$EVENTFLEET_REDIS_URL" -n 1 zrevrange leaderboard:<game>:total_score:all_time 0 9
  curl -s {gateway}/metrics | head          {gateway}/docs (API docs)
  curl -s {operator_metrics_url()} | grep eventfleet_   (operator)
  hack/loadtest 10000 4 --batch 100 --url {gateway}   (more load)

Stop: make demo-stop (deletes the demo's namespaces, so every pod); hack/stack down (the rest)""")
