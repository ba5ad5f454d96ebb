"""Operator benchmark on the local stack: prints numbers beside baselines measured in the same run.

1. Kubernetes API round trip: create + get of a ConfigMap, against a bare GET /version.
2. apply -> Ready: one EventConsumer alone (the baseline), then 50 applied at once; the
   operator's CPU seconds and peak RSS while it handles the 50.
3. backlog -> scale-up decision: an EventConsumer at zero replicas, 2,000 events produced, time
   until status.lastScale shows the decision (against the poll interval, the floor).

    source <(hack/stack env) && .venv/bin/python hack/bench_operator.py [--count 50]

The EventConsumers use replicas.min 0, so no consumer process starts: this measures the
operator, not the consumers. Everything it creates lives in one namespace, deleted at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kubernetes import client, config

REPO = Path(__file__).resolve().parent.parent
GROUP, VERSION, PLURAL = "eventfleet.dev", "v1alpha1", "eventconsumers"
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


def consumer(namespace: str, name: str, bootstrap: str, topic: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EventConsumer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "mode": "logger",
            "kafka": {"bootstrapServers": bootstrap, "topic": topic},
            "topic": {"partitions": 3, "deletionPolicy": "Delete"},
            "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
            "replicas": {"min": 0, "max": 3},
            "autoscaling": {"pollIntervalSeconds": POLL_SECONDS, "lagPerReplica": 100},
        },
    }


def ready(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    found: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in found.get("status", {}).get("conditions", [])
    )


def wait(predicate: Any, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout:.0f}s")


def process_usage(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident memory in bytes of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def main() -> int:  # noqa: PLR0915 - one linear script, read top to bottom
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    bootstrap = os.environ["EVENTFLEET_KAFKA_BOOTSTRAP"]
    config.load_kube_config()
    api = client.ApiClient()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            os.environ.get("EVENTFLEET_KUBECTL", "kubectl"),
            "apply",
            "--server-side",
            "-f",
            str(REPO / "crds" / "eventconsumers.eventfleet.dev.yaml"),
        ],
        check=True,
        capture_output=True,
    )
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    dsn = os.environ["EVENTFLEET_POSTGRES_DSN"]
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="db"),
            data={"dsn": base64.b64encode(dsn.encode()).decode()},
        ),
    )
    log = (REPO / ".stack" / "bench-operator.log").open("wb")
    operator = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "eventfleet"),
            "operator",
            "--namespace",
            namespace,
            "--metrics-port",
            "0",
            "--liveness-port",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    topics = []
    try:
        time.sleep(3)  # the operator connects and lists
        api_round_trips(core, api, namespace)

        print(f"\napply -> Ready (operator log: {log.name})")
        topic = f"bench.{uuid.uuid4().hex[:8]}"
        topics.append(topic)
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, consumer(namespace, "single", bootstrap, topic)
        )
        single = wait(lambda: ready(custom, namespace, "single"), 60)
        print(f"  1 EventConsumer alone (baseline)   {single:5.2f} s")

        cpu_before, _ = process_usage(operator.pid)
        started = time.monotonic()
        names = [f"ec-{index:03d}" for index in range(args.count)]
        for name in names:
            topic = f"bench.{uuid.uuid4().hex[:8]}"
            topics.append(topic)
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, consumer(namespace, name, bootstrap, topic)
            )
        peak_rss = 0
        pending = set(names)
        while pending and time.monotonic() - started < 300:
            pending = {n for n in pending if not ready(custom, namespace, n)}
            peak_rss = max(peak_rss, process_usage(operator.pid)[1])
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        cpu_after, rss = process_usage(operator.pid)
        print(
            f"  {args.count} applied at once, all Ready       {elapsed:5.2f} s "
            f"({elapsed / single:.1f}x one alone; {len(pending)} not Ready)"
        )
        print(
            f"  operator CPU for those {args.count}:          {cpu_after - cpu_before:5.2f} s; "
            f"peak RSS {max(peak_rss, rss) / 2**20:.0f} MiB"
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

        decision = wait(decided, 60)
        print(f"  decision after {decision:4.2f} s (poll interval, the floor: {POLL_SECONDS} s)")
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        core.delete_namespace(namespace)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in (
            admin.delete_topics(topics, operation_timeout=30) if topics else {}
        ).values():
            with contextlib.suppress(Exception):  # cleanup is best effort
                future.result(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
