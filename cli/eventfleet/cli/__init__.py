"""The `eventfleet` command: one entry point for every component of the image."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

COMPONENTS = {
    "operator": "reconcile EventConsumer resources (topic, schema, Deployment, autoscaling)",
    "consumer": "run one consumer process in a mode: logger, stats or leaderboard",
    "gateway": "the HTTP ingestion gateway: POST /api/v1/events into Kafka",
    "migrate": "apply a mode's database migrations",
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
    for name, summary in COMPONENTS.items():
        sub.add_parser(name, help=summary, description=summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"eventfleet {args.command}: not implemented yet", file=sys.stderr)
    return 2
