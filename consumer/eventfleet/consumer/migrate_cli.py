"""`eventfleet migrate --mode M --dsn DSN`: apply a mode's migrations by hand (the operator and
each consumer also apply them; concurrent runs are safe)."""

from __future__ import annotations

import argparse
import os
import sys

from eventfleet.consumer import migrate
from eventfleet.contract.names import MODES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventfleet migrate",
        description="Apply the shared and the mode's schema migrations to a PostgreSQL database.",
    )
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("EVENTFLEET_POSTGRES_DSN"),
        help="PostgreSQL DSN (default: $EVENTFLEET_POSTGRES_DSN)",
    )
    parser.add_argument("--list", action="store_true", help="list the migrations, apply nothing")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    migrations = migrate.for_mode(args.mode)
    if args.list:
        for migration in migrations:
            print(f"{migration.label}  {migration.checksum[:12]}")
        return 0
    if not args.dsn:
        print("eventfleet migrate: --dsn or EVENTFLEET_POSTGRES_DSN is required", file=sys.stderr)
        return 2
    try:
        applied = migrate.apply(args.dsn, args.mode)
    except migrate.MigrationError as error:
        print(f"eventfleet migrate: {error}", file=sys.stderr)
        return 1
    for migration in applied:
        print(f"applied {migration.label}")
    version = migrate.schema_version(migrations)
    print(f"schema of mode {args.mode} is at version {version} ({len(applied)} applied now)")
    return 0
