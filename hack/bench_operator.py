"""Operator benchmark on the local stack: prints numbers beside baselines measured in the same run.

1. Kubernetes API round trip: create + get of a ConfigMap, against a bare GET /version.
2. apply -> Ready: one EventConsumer alone (the baseline), then 50 applied at once; the
   operator's CPU seconds and peak RSS while it handles the 50.
3. backlog -> scale-up decision: an EventConsumer at zero replicas, 2,000 events produced, time
   until status.lastScale shows the decision (against the poll interval, the floor).

    source <(hack/stack env) && .venv/bin/python hack/bench_operator.py [--count 50]
    source <(hack/stack env) && .venv/bin/python hack/bench_operator.py --scale 500 --namespaces 20

The EventConsumers use replicas.min 0, so no consumer process starts: this measures the
operator, not the consumers. Each has a sink of its own (a schema in a database of the run,
hack/operator_bench.py). Everything it creates lives in one namespace and one database, deleted
at the end. `--scale N` runs the fleet benchmark instead (hack/bench_operator_scale.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Producer
from fleetstack.processes import stop_child
from kubernetes import client, config
from operator_bench import (
    GROUP,
    PLURAL,
    REPO,
    VERSION,
    Sinks,
    apply_crd,
    delete_topics,
    is_ready,
    process_usage,
    start_operator,
    wait,
)
from operator_bench import consumer as consumer_manifest

POLL_SECONDS = 5


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def api_round_trips(core: client.CoreV1Api, api: client.ApiClient, namespace: str) -> None:
    version = client.VersionApi(api)
    readyz: list[float] = []
    create_get: list[float] = []
    for index in range(200):
        started = time.perf_counter()
        version.get_code()
        readyz.append(time.perf_counter() - started)
        started = time.perf_counter()
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"bench-{index}"), data={"k": "v"}
            ),
        )
        core.read_namespaced_config_map(f"bench-{index}", namespace)
        create_get.append(time.perf_counter() - started)
    print("Kubernetes API (200 round trips)")
    for label, values in (
        ("GET /version (baseline)", readyz),
        ("create + get ConfigMap", create_get),
    ):
        print(
            f"  {label:26} p50 {percentile(values, 0.5) * 1000:6.1f} ms   "
            f"p99 {percentile(values, 0.99) * 1000:6.1f} ms"
        )


def consumer(namespace: str, name: str, bootstrap: str, topic: str, run: str) -> dict[str, Any]:
    return consumer_manifest(
        namespace, name, bootstrap=bootstrap, topic=topic, run=run, poll_seconds=POLL_SECONDS
    )


def ready(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    found: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return is_ready(found)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50, help="EventConsumers applied at once")
    scale = parser.add_argument_group("the fleet benchmark (hack/bench_operator_scale.py)")
    scale.add_argument("--scale", type=int, metavar="N", help="run it with N EventConsumers")
    scale.add_argument("--namespaces", type=int, default=20, help="spread over this many")
    scale.add_argument(
        "--poll-seconds", type=int, default=15, help="their pollIntervalSeconds (the default)"
    )
    scale.add_argument("--window", type=float, default=30, help="steady-state window, seconds")
    scale.add_argument("--budget", type=int, default=480, help="the whole run's deadline, seconds")
    return parser.parse_args()


def main() -> int:  # noqa: PLR0915 - one linear script, read top to bottom
    args = parse_args()
    if args.scale:
        from bench_operator_scale import run_scale  # noqa: PLC0415 - only for --scale

        return run_scale(args)
    bootstrap = os.environ["EVENTFLEET_KAFKA_BOOTSTRAP"]
    config.load_kube_config()
    api = client.ApiClient()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    run = f"bench-{uuid.uuid4().hex[:8]}"
    namespace = run
    apply_crd()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    sinks = Sinks(os.environ["EVENTFLEET_POSTGRES_DSN"], run)
    names = [f"ec-{index:03d}" for index in range(args.count)]
    sinks.create(core, namespace, ["single", *names])
    log = REPO / ".stack" / "bench-operator.log"
    operator = start_operator([namespace], log)
    topics: list[str] = []
    try:
        time.sleep(3)  # the operator connects and lists
        api_round_trips(core, api, namespace)

        print(f"\napply -> Ready (operator log: {log})")
        topic = f"{run}.single"
        topics.append(topic)
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, consumer(namespace, "single", bootstrap, topic, run)
        )
        single = wait(lambda: ready(custom, namespace, "single"), 60, "one EventConsumer Ready")
        print(f"  1 EventConsumer alone (baseline)   {single:5.2f} s")

        before = process_usage(operator.pid)
        started = time.monotonic()
        for name in names:
            topic = f"{run}.{name}"
            topics.append(topic)
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, consumer(namespace, name, bootstrap, topic, run)
            )
        peak_rss = 0
        pending = set(names)
        while pending and time.monotonic() - started < 120:
            pending = {n for n in pending if not ready(custom, namespace, n)}
            peak_rss = max(peak_rss, process_usage(operator.pid).rss_bytes)
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        after = process_usage(operator.pid)
        print(
            f"  {args.count} applied at once, all Ready       {elapsed:5.2f} s "
            f"({elapsed / single:.1f}x one alone; {len(pending)} not Ready)"
        )
        print(
            f"  operator CPU for those {args.count}:          "
            f"{after.cpu_seconds - before.cpu_seconds:5.2f} s; "
            f"peak RSS {max(peak_rss, after.rss_bytes) / 2**20:.0f} MiB"
        )

        print("\nbacklog -> scale-up decision")
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for index in range(2000):
            producer.produce(
                topics[0],
                key=f"p{index}",
                value=json.dumps(
                    {
                        "event_type": "player_login",
                        "player_id": f"p{index}",
                        "game_id": "g",
                        "timestamp": stamp,
                    }
                ),
            )
        producer.flush(30)

        def decided() -> bool:
            found: Any = custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "single"
            )
            return bool(found.get("status", {}).get("lastScale", {}).get("to", 0) > 0)

        decision = wait(decided, 60, "the scale decision")
        print(f"  decision after {decision:4.2f} s (poll interval, the floor: {POLL_SECONDS} s)")
    finally:
        stop_child(operator)
        core.delete_namespace(namespace)  # no finalizers: deletionPolicy Retain
        left = delete_topics(bootstrap, topics)
        sinks.drop()
        if left:
            print(f"cleanup: topics left behind: {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
