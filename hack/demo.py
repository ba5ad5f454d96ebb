"""`make demo`: the whole pipeline, operator-driven, on the local stack's real node.

eventfleet is deployed from `manifests/` (the operator and the gateway as pods of the image built
from the Dockerfile). HTTP load -> the gateway pod -> Kafka -> three EventConsumers (logger,
stats, leaderboard) reconciled by the operator into a topic, schemas and Deployments whose pods
the kubelet runs, autoscaled on lag -> PostgreSQL and Redis. It prints what a person wants to
see, then leaves everything running to explore; `make demo-stop` deletes what it deployed.

Each run starts clean: namespace `gamemetrics`, database `gamemetrics`, topic `player.events.raw`
and Redis dbs 0 and 1 are reset first.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import demo_scrape
import psycopg2
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from fleetstack import deploy
from prometheus_client.parser import text_string_to_metric_families
from psycopg2 import sql

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / ".stack" / "demo"
# Beside the stack it was drawn from (hack/stack's default folder, or EVENTFLEET_STACK_DIR's).
CHART = Path(os.environ.get("EVENTFLEET_STACK_DIR", REPO / ".stack")) / "demo" / "autoscaling.png"
NAMESPACE = "gamemetrics"
DATABASE = "gamemetrics"
TOPIC = "player.events.raw"
SYSTEM = deploy.SYSTEM_NAMESPACE
OPERATOR_METRICS_PORT = 8081  # manifests/operator/deployment.yaml
GATEWAY_PORT = 8080  # manifests/gateway/settings.yaml
CONSUMER_PORT = 8080  # the consumer's /metrics (operator/.../builders.py HTTP_PORT)
EVENTS = int(os.environ.get("EVENTFLEET_DEMO_EVENTS", "60000"))
MALFORMED = 24


def title(text: str) -> None:
    print(f"\n\033[1m{text}\033[0m", flush=True)


def say(text: str) -> None:
    print(f"  {text}", flush=True)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    binary = os.environ.get("EVENTFLEET_KUBECTL") or shutil.which("kubectl") or "kubectl"
    done = subprocess.run(
        [binary, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def wait(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


# ------------------------------------------------------------------------------- processes


def stop_demo_processes() -> None:
    """Local processes an older demo started (it ran the operator and gateway on the host)."""
    for pidfile in DEMO_DIR.glob("*.pid"):
        try:
            pid = int(pidfile.read_text())
            os.killpg(pid, signal.SIGTERM)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        else:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state == "Z":
                    break
                time.sleep(0.2)
        pidfile.unlink(missing_ok=True)


# ------------------------------------------------------------------------------- steps


def reset(env: dict[str, str]) -> str:
    """A clean slate; returns the demo database's DSN."""
    delete_deployed()
    admin = AdminClient({"bootstrap.servers": env["EVENTFLEET_KAFKA_BOOTSTRAP"]})
    if TOPIC in admin.list_topics(timeout=10).topics:
        admin.delete_topics([TOPIC])[TOPIC].result(30)
        wait("the old topic to go", lambda: TOPIC not in admin.list_topics(timeout=10).topics, 30)
    connection = psycopg2.connect(env["EVENTFLEET_POSTGRES_DSN"])
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    connection.close()
    for db in (0, 1):
        redis_for(env, db).flushdb()
    parts = urlsplit(env["EVENTFLEET_POSTGRES_DSN"])
    return urlunsplit(parts._replace(path=f"/{DATABASE}"))


def delete_deployed() -> None:
    """The demo's namespace and eventfleet's own (the operator and gateway pods), waited for."""
    for namespace in (NAMESPACE, SYSTEM):
        if kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name"):
            kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s")


def leader_pod(holder: str, pods: dict[str, str]) -> str | None:
    """The address of the operator pod that holds the Lease: its identity starts with the pod's
    name (leadership.identity). `pods` maps pod names to addresses."""
    for name, address in pods.items():
        if holder.startswith(f"{name}-") and address:
            return address
    return None


def pod_addresses(namespace: str, selector: str) -> dict[str, str]:
    found = json.loads(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))
    return {
        pod["metadata"]["name"]: pod.get("status", {}).get("podIP", "")
        for pod in found["items"]
        if not pod["metadata"].get("deletionTimestamp")
    }


def operator_metrics_url() -> str | None:
    lease = json.loads(
        kubectl("get", "lease", "eventfleet-operator", "-n", SYSTEM, "-o", "json", check=False)
        or "{}"
    )
    holder = lease.get("spec", {}).get("holderIdentity") or ""
    address = leader_pod(
        holder, pod_addresses(SYSTEM, "app.kubernetes.io/name=eventfleet-operator")
    )
    return f"http://{address}:{OPERATOR_METRICS_PORT}/metrics" if address else None


def deploy_eventfleet(env: dict[str, str]) -> None:
    """`kubectl apply -k` of manifests/ with the node's overlay (hack/fleetstack/deploy.py)."""
    image = (
        subprocess.run(
            [str(REPO / "hack" / "stack"), "image"], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    work = DEMO_DIR / "deploy"
    work.mkdir(parents=True, exist_ok=True)
    server = re.search(r"server: https://[^:]+:(\d+)", Path(env["KUBECONFIG"]).read_text())
    (work / "kustomization.yaml").write_text(
        deploy.overlay(
            image=image,
            node_address=env["EVENTFLEET_NODE_ADDRESS"],
            apiserver_port=int(server[1]) if server else 0,
            kafka_bootstrap=env["EVENTFLEET_KAFKA_POD_BOOTSTRAP"],
            gateway_topic=TOPIC,
            workdir=work,
            # Only the demo's namespace: a test run on the same stack is never disturbed.
            watch=["--namespace", NAMESPACE],
        )
    )
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(work))
    say(f"kubectl apply -k manifests/ (image {image}, overlay {display(work)})")


def display(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def redis_for(env: dict[str, str], db: int) -> redis.Redis:
    parts = urlsplit(env["EVENTFLEET_REDIS_URL"])
    return redis.Redis.from_url(urlunsplit(parts._replace(path=f"/{db}")), decode_responses=True)


def sample(name: str, bootstrap: str) -> dict[str, Any]:
    """A sample from manifests/samples, pointed at the local Kafka and tuned to show scaling."""
    import yaml  # noqa: PLC0415 - the dev dependency, loaded only here

    body: dict[str, Any] = yaml.safe_load(
        (REPO / "manifests" / "samples" / f"{name}.yaml").read_text()
    )
    body["spec"]["kafka"]["bootstrapServers"] = bootstrap
    body["spec"]["autoscaling"] = {
        "pollIntervalSeconds": 5,
        "lagPerReplica": 500,
        "scaleDownStabilizationSeconds": 20,
    }
    return body


def consumers() -> list[dict[str, Any]]:
    found: dict[str, Any] = json.loads(kubectl("get", "ec", "-n", NAMESPACE, "-o", "json"))
    return list(found["items"])


def all_ready() -> bool:
    items = consumers()
    return len(items) == 3 and all(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in item.get("status", {}).get("conditions", [])
        )
        for item in items
    )


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def send_load(gateway: str) -> int:
    """The load test's own sender (hack/loadtest.py); returns the events the gateway accepted."""
    loadtest = load_module(REPO / "hack" / "loadtest.py")
    options = Namespace(
        total=EVENTS,
        concurrency=8,
        url=gateway,
        batch=100,
        players=2000,
        games=5,
        api_key=None,
        max_seconds=300,
        timeout=30,
        seed=42,
    )
    tally = loadtest.Tally()
    seconds = asyncio.run(loadtest.send_all(options, tally))
    loadtest.report(options, tally, seconds)
    accepted: int = tally.events_accepted
    return accepted


def send_malformed(bootstrap: str) -> None:
    """What a misbehaving producer that bypasses the gateway might write straight to Kafka."""
    producer = Producer({"bootstrap.servers": bootstrap})
    bad = [
        b"{not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"just text"',
        b"{}",
        json.dumps(
            {
                "event_type": "match_completed",
                "player_id": "p1",
                "game_id": "g",
                "timestamp": "2026-01-01T00:00:00Z",
                "data": {"score": -5, "won": True},
            }
        ).encode(),
    ]
    for index in range(MALFORMED):
        producer.produce(TOPIC, key=f"bad-{index}", value=bad[index % len(bad)])
    producer.flush(30)


def lag_of(item: dict[str, Any]) -> int | None:
    lag = item.get("status", {}).get("lag", {}).get("total")
    return lag if isinstance(lag, int) else None


def table() -> str:
    return kubectl("get", "ec", "-n", NAMESPACE)


def main() -> int:
    env = dict(os.environ)
    bootstrap = env["EVENTFLEET_KAFKA_BOOTSTRAP"]
    started = time.monotonic()
    title("1/6  A clean slate on the local stack")
    stop_demo_processes()
    dsn = reset(env)
    node_address = env["EVENTFLEET_NODE_ADDRESS"]  # where pods find the stack
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(REPO / "crds" / "eventconsumers.eventfleet.dev.yaml"),
    )
    kubectl("wait", "--for=condition=Established", "crd/eventconsumers.eventfleet.dev")
    kubectl("create", "namespace", NAMESPACE)
    kubectl(
        "create",
        "secret",
        "generic",
        "gamemetrics-db",
        "-n",
        NAMESPACE,
        f"--from-literal=dsn={deploy.from_pod(dsn, node_address)}",
    )
    kubectl(
        "create",
        "secret",
        "generic",
        "gamemetrics-redis",
        "-n",
        NAMESPACE,
        f"--from-literal=url={deploy.from_pod(env['EVENTFLEET_REDIS_URL'], node_address)}",
    )
    say(f"CRD installed; namespace {NAMESPACE} with Secrets gamemetrics-db and gamemetrics-redis")
    say(f"database {DATABASE}, topic {TOPIC} and Redis dbs 0-1 reset")

    title("2/6  eventfleet deployed from manifests/ on the node: operator and gateway pods")
    deploy_eventfleet(env)
    wait("the operator's pods", lambda: available(SYSTEM, "eventfleet-operator"), 180)
    wait("the operator to hold its Lease", lambda: operator_metrics_url() is not None, 60)
    print(kubectl("get", "pods", "-n", SYSTEM, "-o", "wide"), end="", flush=True)

    title("3/6  The three EventConsumers of the original design, then the gateway")
    pod_bootstrap = env["EVENTFLEET_KAFKA_POD_BOOTSTRAP"]
    for name in ("logger", "stats", "leaderboard"):
        kubectl("apply", "-f", "-", stdin=json.dumps(sample(name, pod_bootstrap)))
    applied = time.monotonic()
    wait("all three EventConsumers to be Ready", all_ready, 180)
    say(f"all Ready {time.monotonic() - applied:.1f}s after kubectl apply")
    print(table(), flush=True)
    print(kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide"), end="", flush=True)
    # The gateway is ready once the topic the logger EventConsumer manages exists.
    wait("the gateway pod to be ready", lambda: available(SYSTEM, "eventfleet-gateway"), 120)
    gateways = pod_addresses(SYSTEM, "app.kubernetes.io/name=eventfleet-gateway")
    gateway = f"http://{next(a for a in gateways.values() if a)}:{GATEWAY_PORT}"
    say(f"gateway pod ready at {gateway}")

    title(
        f"4/6  A burst: {EVENTS:,} events through the gateway (+{MALFORMED} malformed into Kafka)"
    )
    groups = {item["metadata"]["name"]: item["status"]["consumerGroup"] for item in consumers()}
    sampler = demo_scrape.Sampler(operator_metrics_url() or "", NAMESPACE, bootstrap, TOPIC, groups)
    sampler.start()
    accepted = send_load(gateway)
    send_malformed(bootstrap)

    title("5/6  Consumers catching up: the operator scales on lag, then back down")
    catch_up()
    chart = demo_scrape.save(sampler.stop(), CHART)

    title("6/6  What happened")
    print(table(), flush=True)
    print(kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide"), end="", flush=True)
    report_results(env, dsn, accepted)
    print(f"\ndemo took {time.monotonic() - started:.0f}s", flush=True)
    where_to_look(gateway)
    say(f"the burst as dashboard panels (lag, replicas, events/s per mode): {chart}")
    explore(gateway)
    return 0


def available(namespace: str, deployment: str) -> bool:
    found = json.loads(
        kubectl("get", "deployment", deployment, "-n", namespace, "-o", "json", check=False) or "{}"
    )
    status, spec = found.get("status", {}), found.get("spec", {})
    return bool(status.get("availableReplicas")) and status.get("updatedReplicas") == spec.get(
        "replicas"
    )


def catch_up() -> None:
    """Until the fleet has drained and scaled back down (or 150 s), its progress every 5 s."""
    burst_end = time.monotonic()
    seen_scale_down = False
    while time.monotonic() - burst_end < 150:
        items = consumers()
        lags = [lag_of(item) for item in items]
        replicas = [item.get("status", {}).get("desiredReplicas") for item in items]
        print(
            f"  {time.monotonic() - burst_end:5.0f}s  "
            + "   ".join(
                f"{item['metadata']['name']}: lag {lag if lag is not None else '?':>6} replicas {r}"
                for item, lag, r in zip(items, lags, replicas, strict=True)
            ),
            flush=True,
        )
        minimums = [item["spec"]["replicas"]["min"] for item in items]
        drained = all(lag == 0 for lag in lags)
        seen_scale_down = drained and all(r == m for r, m in zip(replicas, minimums, strict=True))
        if seen_scale_down and any("ScaledDown" in line for line in scaling_events()):
            break
        time.sleep(5)
    # The replicas scaled away stop within moments; the table below should not catch them.
    settled_by = time.monotonic() + 20
    while time.monotonic() < settled_by and not all(
        (item.get("status", {}).get("readyReplicas") or 0)
        == item.get("status", {}).get("desiredReplicas")
        for item in consumers()
    ):
        time.sleep(1)


def scaling_events() -> list[str]:
    found = json.loads(kubectl("get", "events", "-n", NAMESPACE, "-o", "json"))
    lines = []
    for event in sorted(found["items"], key=lambda e: e.get("lastTimestamp") or ""):
        if event.get("reason", "").startswith("Scaled"):
            lines.append(
                f"{(event.get('lastTimestamp') or '')[11:19]}  "
                f"{event['involvedObject']['name']:12} {event['reason']:10} "
                f"{event['message']}"
            )
    return lines


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


if __name__ == "__main__":
    if sys.argv[1:] == ["stop"]:
        stop_demo_processes()
        delete_deployed()
        print(
            f"namespaces {NAMESPACE} and {SYSTEM} deleted (the stack keeps running: "
            "hack/stack down stops it)"
        )
        sys.exit(0)
    sys.exit(main())
