"""`kubectl eventfleet COMMAND`: one EventConsumer at a glance, and the verbs an admin reaches for.

    kubectl eventfleet status NAME            conditions, lag per partition, scale decisions,
                                              dead letters and pods on one screen; Kafka is
                                              read with the kafka.authSecretRef Secret (your
                                              RBAC), or --kafka-auth PATH (a binding file or
                                              directory, docs/security.md)
    kubectl eventfleet pause NAME             hands off: the operator neither scales nor restores
    kubectl eventfleet resume NAME
    kubectl eventfleet scale NAME N           N replicas by hand (autoscaling off)
    kubectl eventfleet scale NAME --auto      autoscaling on again
    kubectl eventfleet dlq NAME list|show|replay|purge ...
                                              `eventfleet dlq` on this EventConsumer's database
                                              (its DSN Secret, read with your RBAC) and group
    kubectl eventfleet report [-A] [-o FILE]  a tarball for a bug report, credentials redacted

kubectl finds this as `kubectl-eventfleet` on the PATH; `-n/--namespace` and `--context` work as
in kubectl (the context's namespace is the default).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from eventfleet.cli.plugin import cluster as reads
from eventfleet.cli.plugin.cluster import Cluster, NotFoundError
from eventfleet.cli.plugin.report import collect
from eventfleet.cli.plugin.view import Seen, Unreadable, render

PROG = "kubectl eventfleet"
# The `eventfleet dlq` subcommands that select rows, and so take the group and Kafka defaults.
SELECTING = ("list", "replay", "purge")


def build_parser() -> argparse.ArgumentParser:
    # -n and --context go before or after the command, as with kubectl: a subcommand's copy
    # only sets them when given (SUPPRESS), so it never resets what came before the command.
    scope = argparse.ArgumentParser(add_help=False)
    scope.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="the namespace")
    scope.add_argument("--context", default=argparse.SUPPRESS, help="the kubeconfig context")
    parser = argparse.ArgumentParser(prog=PROG, description="Operate eventfleet EventConsumers.")
    parser.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    parser.add_argument("--context", help="the kubeconfig context (default: the current one)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary, parents=[scope])

    shown = command("status", "one EventConsumer on one screen")
    shown.add_argument("name")
    shown.add_argument(
        "--kafka-auth",
        type=Path,
        help="Kafka credentials for the lag read: a binding file (JSON) or directory "
        "(default: the EventConsumer's kafka.authSecretRef Secret)",
    )
    command("pause", "hands off: no scaling, no drift repair").add_argument("name")
    command("resume", "undo pause").add_argument("name")
    scale = command("scale", "replicas by hand, or autoscaling again")
    scale.add_argument("name")
    scale.add_argument("replicas", nargs="?", type=int)
    scale.add_argument("--auto", action="store_true", help="autoscaling on again")
    dlq = command("dlq", "eventfleet dlq on this EventConsumer's database")
    dlq.add_argument("name")
    dlq.add_argument("arguments", nargs=argparse.REMAINDER, help="list|show|replay|purge ...")
    report = command("report", "a bug-report tarball, credentials redacted")
    report.add_argument("-A", "--all-namespaces", action="store_true")
    report.add_argument("-o", "--output", type=Path, help="default: eventfleet-report-TIME.tar.gz")
    return parser


def status(cluster: Cluster, name: str, kafka_auth: Path | None = None) -> int:
    resource = cluster.eventconsumer(name)
    state = resource.get("status", {})
    group = state.get("consumerGroup")
    try:
        dlq = (
            reads.dlq_rate(cluster.postgres_dsn(resource), group)
            if group
            else Unreadable("the status names no consumer group yet")
        )
    except NotFoundError as error:
        dlq = Unreadable(str(error))
    seen = Seen(
        resource=resource,
        events=cluster.events_of(resource["metadata"]["uid"]),
        pods=cluster.pods(state.get("selector")),
        partitions=reads.partitions(resource, cluster.kafka_connection(resource, kafka_auth)),
        dlq=dlq,
    )
    print(render(seen, datetime.now(UTC)), end="")
    return 0


def scale(cluster: Cluster, args: argparse.Namespace) -> int:
    if args.auto == (args.replicas is not None):
        print(f"{PROG} scale: give a replica count or --auto (not both)", file=sys.stderr)
        return 2
    if args.auto:
        cluster.patch_spec(
            args.name, {"autoscaling": {"enabled": True}, "replicas": {"count": None}}
        )
        print(f"{cluster.namespace}/{args.name}: autoscaling on")
        return 0
    if not 0 <= args.replicas <= 1000:
        print(f"{PROG} scale: replicas must be 0 to 1000", file=sys.stderr)
        return 2
    cluster.patch_spec(
        args.name, {"autoscaling": {"enabled": False}, "replicas": {"count": args.replicas}}
    )
    print(f"{cluster.namespace}/{args.name}: {args.replicas} replicas by hand (autoscaling off;"
          f" `{PROG} scale {args.name} --auto` to undo)")  # fmt: skip
    return 0


def dlq(cluster: Cluster, name: str, arguments: list[str]) -> int:
    from eventfleet.consumer.dlq import cli as dlq_cli  # noqa: PLC0415 - loaded only for dlq

    resource = cluster.eventconsumer(name)
    dsn = cluster.postgres_dsn(resource)
    command, rest = (arguments[0], arguments[1:]) if arguments else ("list", [])
    extra: list[str] = []
    group = resource.get("status", {}).get("consumerGroup")
    if command in SELECTING and "--group" not in rest and group:
        extra += ["--group", group]
    if command == "replay" and "--bootstrap" not in rest:
        extra += ["--bootstrap", resource["spec"]["kafka"]["bootstrapServers"]]
    return dlq_cli.main(["--dsn", dsn, command, *extra, *rest])


def leading_scope(args: argparse.Namespace) -> None:
    """`dlq NAME -n NS list`: the REMAINDER took `-n NS`; give the leading scope flags back."""
    rest = list(args.arguments)
    while len(rest) >= 2 and rest[0] in ("-n", "--namespace", "--context"):
        setattr(args, "context" if rest[0] == "--context" else "namespace", rest[1])
        rest = rest[2:]
    args.arguments = rest


def run(args: argparse.Namespace) -> int:
    if args.command == "dlq":
        leading_scope(args)
    api, default_namespace = reads.connect(args.context)
    cluster = Cluster(api, args.namespace or default_namespace)
    if args.command == "status":
        return status(cluster, args.name, args.kafka_auth)
    if args.command in ("pause", "resume"):
        cluster.patch_spec(args.name, {"paused": args.command == "pause"})
        what = (
            "paused: the operator neither scales nor restores drift"
            if args.command == "pause"
            else "resumed"
        )
        print(f"{cluster.namespace}/{args.name} {what}")
        return 0
    if args.command == "scale":
        return scale(cluster, args)
    if args.command == "dlq":
        return dlq(cluster, args.name, args.arguments)
    output = args.output or Path(f"eventfleet-report-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.gz")
    report = collect(cluster, all_namespaces=args.all_namespaces)
    output.write_bytes(report.tarball())
    print(f"wrote {output} ({len(report.files)} files; README.txt inside lists what is in it)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except NotFoundError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except ApiException as error:
        print(f"{PROG}: the API server said {error.status} {error.reason}", file=sys.stderr)
        return 1
