"""`eventfleet operator`: run the kopf operator that reconciles EventConsumers."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Sequence
from typing import Final

import kopf
from prometheus_client import start_http_server

from eventfleet.operator import config, leadership, metrics, standby, terminating_namespaces


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventfleet operator",
        description="Reconcile EventConsumer resources into topics, schemas and autoscaled "
        "consumer Deployments.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; glob patterns allowed)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default when no --namespace is given)",
    )
    parser.add_argument(
        "--default-image",
        default=os.environ.get("EVENTFLEET_DEFAULT_IMAGE", "eventfleet:0.1.0"),
        help="consumer image when spec.image is unset (env EVENTFLEET_DEFAULT_IMAGE)",
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=8081,
        help="Prometheus /metrics port, 0 to disable (default 8081)",
    )
    parser.add_argument(
        "--liveness-port",
        type=_port,
        default=8082,
        help="liveness endpoint /healthz port, 0 to disable (default 8082)",
    )
    parser.add_argument(
        "--bind",
        default="0.0.0.0",  # noqa: S104 - probes come from the kubelet
        help="address for the metrics and liveness endpoints",
    )
    parser.add_argument(
        "--leader-elect",
        action="store_true",
        help="run as one of several replicas: only the holder of the Lease "
        f"{leadership.LEASE_NAME} acts, the others wait as standbys",
    )
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "eventfleet-system"),
        help="namespace of the leader Lease (env POD_NAMESPACE; default eventfleet-system)",
    )
    parser.add_argument(
        "--topic-deletion-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up deleting a deletionPolicy: Delete topic after this long, leave it behind "
        "with a TopicLeftBehind Warning Event and let the EventConsumer go (default 120)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def _port(raw: str) -> int:
    if not raw.isdigit() or int(raw) > 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port (0-65535)")
    return int(raw)


M_ARENA_MAX: Final = -8  # glibc's mallopt parameter (malloc.h)


def _fewer_malloc_arenas() -> None:
    """At most two glibc malloc arenas. By default glibc gives threads that allocate at once up
    to 8 arenas per core, and the operator has dozens of threads (kopf's executor, the loop's
    workers, four in each consumer-group reader): at 500 EventConsumers the arenas' free space
    held about 18 MB. The threads mostly wait for the network, so contention costs nothing
    measurable. Left as it is where mallopt is not glibc's."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError, TypeError):
        pass


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    _fewer_malloc_arenas()  # before any thread starts
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from eventfleet.operator import handlers  # noqa: PLC0415, F401 - registers the kopf handlers

    terminating_namespaces.install()

    config.configure(
        config.OperatorConfig(
            default_image=args.default_image,
            topic_deletion_timeout_seconds=args.topic_deletion_timeout,
        )
    )
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.bind)
    liveness = f"http://{args.bind}:{args.liveness_port}/healthz" if args.liveness_port else None
    if args.leader_elect:
        if not standby.wait_for_leadership(args.lease_namespace, args.bind, args.liveness_port):
            return 0  # stopped while a standby
    else:
        metrics.LEADER.set(1)
    try:
        kopf.run(
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            # One replica acts, chosen by the Lease (leadership.py), not by kopf's peering.
            standalone=True,
            liveness_endpoint=liveness,
        )
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
