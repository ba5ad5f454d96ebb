"""The `eventfleet` command: one entry point for every component of the image.

Each subcommand belongs to its component: `eventfleet consumer ARGS` calls
`eventfleet.consumer.cli.main(ARGS)`, and so on. Components are imported only when their command
runs, so a consumer process never loads kopf and the operator never loads the HTTP stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NamedTuple


class Command(NamedTuple):
    module: str  # exposes main(argv: list[str]) -> int
    summary: str


COMMANDS = {
    "operator": Command(
        "eventfleet.operator.cli",
        "reconcile EventConsumer resources (topic, schema, Deployment, autoscaling)",
    ),
    "consumer": Command(
        "eventfleet.consumer.cli",
        "run one consumer process in a mode: logger, stats or leaderboard",
    ),
    "gateway": Command(
        "eventfleet.gateway.cli", "the HTTP ingestion gateway: POST /api/v1/events into Kafka"
    ),
    "migrate": Command("eventfleet.consumer.migrate_cli", "apply a mode's database migrations"),
    "dlq": Command(
        "eventfleet.consumer.dlq.cli", "inspect, replay and purge dead letters (dlq_events)"
    ),
}


def version() -> str:
    try:
        return metadata.version("eventfleet")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventfleet",
        description="eventfleet: Kafka consumer fleets for player events, run by an operator.",
    )
    parser.add_argument("--version", action="version", version=f"eventfleet {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        # Each component parses its own options: pass everything after the name through.
        sub.add_parser(name, help=command.summary, description=command.summary, add_help=False)
    return parser


def load(name: str) -> Callable[[list[str]], int] | None:
    try:
        module = importlib.import_module(COMMANDS[name].module)
    except ModuleNotFoundError as error:
        if error.name != COMMANDS[name].module:
            raise  # a real missing dependency inside the component must not look "unbuilt"
        return None
    entry: Callable[[list[str]], int] = module.main
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parsed, rest = build_parser().parse_known_args(arguments[:1])
    entry = load(parsed.command)
    if entry is None:
        print(f"eventfleet {parsed.command}: not implemented yet", file=sys.stderr)
        return 2
    return entry([*rest, *arguments[1:]])
