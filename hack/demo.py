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

import json
import os
import sys
import time
from pathlib import Path

import demo_scrape
from demo_cluster import (
    DATABASE,
    GATEWAY_PORT,
    NAMESPACE,
    REPO,
    SYSTEM,
    TOPIC,
    all_ready,
    available,
    consumers,
    kubectl,
    operator_metrics_url,
    pod_addresses,
    table,
    wait,
)
from demo_load import EVENTS, MALFORMED, catch_up, send_load, send_malformed
from demo_report import explore, report_results, say, title, where_to_look
from demo_setup import (
    delete_deployed,
    deploy_eventfleet,
    install_crd_and_secrets,
    reset,
    sample,
    stop_demo_processes,
)

# Beside the stack it was drawn from (hack/stack's default folder, or EVENTFLEET_STACK_DIR's).
CHART = Path(os.environ.get("EVENTFLEET_STACK_DIR", REPO / ".stack")) / "demo" / "autoscaling.png"


def main() -> int:
    env = dict(os.environ)
    bootstrap = env["EVENTFLEET_KAFKA_BOOTSTRAP"]
    started = time.monotonic()
    title("1/6  A clean slate on the local stack")
    stop_demo_processes()
    dsn = reset(env)
    install_crd_and_secrets(env, dsn)
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
