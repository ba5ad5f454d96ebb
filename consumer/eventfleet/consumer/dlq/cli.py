"""`eventfleet dlq list|show|replay|purge`: the dead letters of one database.

    eventfleet dlq list [--group G] [--reason R]... [--since 2h] [--until T] [--pending]
    eventfleet dlq show ID [--hex]
    eventfleet dlq replay [filters] [--id N]... [--patch JSON] [--set FIELD=VALUE]... [--dry-run]
    eventfleet dlq purge (--older-than DAYS | --replayed) [filters]

The database is `--dsn` or $EVENTFLEET_POSTGRES_DSN; a replay's Kafka is `--bootstrap` or
$EVENTFLEET_KAFKA_BOOTSTRAP, its credentials `--kafka-auth PATH` or $EVENTFLEET_KAFKA_AUTH (a
binding Secret's files, or a JSON object of them: docs/security.md; its bootstrap.servers is
the default), with extra client settings as `--kafka-config NAME=VALUE`.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2

from eventfleet.consumer.dlq import table
from eventfleet.consumer.dlq.fixup import Fixup, FixupError, parse_patch, parse_set
from eventfleet.consumer.dlq.replay import KafkaSender, Summary, replay
from eventfleet.consumer.dlq.selection import Selection, SelectionError, parse_when
from eventfleet.contract.kafka_binding import NO_AUTH, BindingError, load_binding

PROG = "eventfleet dlq"
MAX_PURGE_DAYS = 36_500


class UsageError(ValueError):
    pass


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", help="only this consumer group")
    parser.add_argument(
        "--reason", action="append", default=[], help="only this reason (repeatable)"
    )
    parser.add_argument("--since", help="failed at or after: an age (30m, 2h, 7d) or ISO time")
    parser.add_argument("--until", help="failed before: an age or an ISO time")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Inspect, replay and purge dead letters."
    )
    parser.add_argument("--dsn", default=os.environ.get("EVENTFLEET_POSTGRES_DSN"),
                        help="PostgreSQL DSN (default: $EVENTFLEET_POSTGRES_DSN)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="counts by group, reason and hour")
    _filters(listing)
    listing.add_argument("--pending", action="store_true", help="only rows not replayed yet")
    show = sub.add_parser("show", help="one row in full")
    show.add_argument("id", type=int)
    show.add_argument("--hex", action="store_true", help="the raw bytes as hex")
    again = sub.add_parser("replay", help="send rows back to Kafka, optionally fixed up")
    _filters(again)
    again.add_argument("--id", type=int, action="append", default=[], help="this row (repeats)")
    again.add_argument("--patch", help="a JSON merge patch applied to each event")
    again.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="set a field, e.g. data.score=0 (repeatable, applied after --patch)",
    )  # fmt: skip
    again.add_argument("--topic", help="send here instead of each row's own topic")
    again.add_argument(
        "--dry-run", action="store_true", help="show what would be sent, send nothing"
    )
    again.add_argument("--batch-size", type=int, default=500)
    again.add_argument(
        "--bootstrap", help="default: the binding's, else $EVENTFLEET_KAFKA_BOOTSTRAP"
    )
    again.add_argument(
        "--kafka-auth", type=Path, default=os.environ.get("EVENTFLEET_KAFKA_AUTH") or None,
        metavar="PATH", help="Kafka credentials: a binding directory or JSON file",
    )  # fmt: skip
    again.add_argument("--kafka-config", action="append", default=[], metavar="NAME=VALUE")
    purge = sub.add_parser("purge", help="delete old or replayed rows")
    _filters(purge)
    purge.add_argument("--older-than", type=int, metavar="DAYS", help="rows failed this long ago")
    purge.add_argument("--replayed", action="store_true", help="rows already replayed")
    return parser


def selection_of(args: argparse.Namespace, now: datetime) -> Selection:
    return Selection(
        group=args.group,
        reasons=tuple(args.reason),
        since=parse_when(args.since, now=now) if args.since else None,
        until=parse_when(args.until, now=now) if args.until else None,
        ids=tuple(getattr(args, "id", ()) or ()),
        replayed=False if getattr(args, "pending", False) else None,
    )


def _time(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else "-"


def print_counts(counts: list[table.Count]) -> None:
    if not counts:
        print("no dead letters match")
        return
    print(f"{'HOUR (UTC)':<17} {'GROUP':<28} {'REASON':<18} {'ROWS':>7} {'REPLAYED':>9}")
    for count in counts:
        hour = count.hour.astimezone(UTC).strftime("%Y-%m-%d %H:00")
        print(
            f"{hour:<17} {count.group:<28} {count.reason:<18} {count.rows:>7} {count.replayed:>9}"
        )
    total, replayed = sum(c.rows for c in counts), sum(c.replayed for c in counts)
    print(f"{len(counts)} rows of counts, {total} dead letters, {replayed} replayed")


def hex_dump(raw: bytes) -> str:
    lines = []
    for start in range(0, len(raw), 16):
        chunk = raw[start : start + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{start:08x}  {chunk.hex(' '):<47}  {text}")
    return "\n".join(lines)


def print_row(found: table.Row, *, as_hex: bool) -> None:
    letter = found.letter
    print(f"id         {letter.id}")
    source = f"{letter.topic}/{letter.partition}/{letter.offset}"
    print(f"source     {source} (group {letter.consumer_group})")
    print(f"failed at  {_time(found.failed_at)}")
    print(f"reason     {found.reason}: {found.message}")
    for error in found.errors:
        print(f"  {error.get('field', '?')}: {error.get('message', '')}")
    if found.replayed_at is None:
        print("replayed   no")
    else:
        where_to = f"to {found.replayed_to} as {found.replayed_event_id}"
        print(f"replayed   {_time(found.replayed_at)} {where_to}")
    print(f"raw        {len(letter.raw)} bytes")
    print(hex_dump(letter.raw) if as_hex else letter.raw.decode("utf-8", "backslashreplace"))


def _kafka_config(args: argparse.Namespace) -> dict[str, str]:
    binding = NO_AUTH if args.kafka_auth is None else load_binding(Path(args.kafka_auth))
    if isinstance(binding, BindingError):
        raise UsageError(f"--kafka-auth: {binding.message}")
    bootstrap = (
        args.bootstrap or binding.bootstrap_servers or os.environ.get("EVENTFLEET_KAFKA_BOOTSTRAP")
    )
    if not bootstrap:
        raise UsageError(
            "a replay needs --bootstrap, EVENTFLEET_KAFKA_BOOTSTRAP or a --kafka-auth binding "
            "with bootstrap.servers"
        )
    config = {"bootstrap.servers": bootstrap, **binding.client_config()}
    for pair in args.kafka_config:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--kafka-config {pair!r}: expected NAME=VALUE")
        config[name.strip()] = value
    return config


def _progress(summary: Summary) -> None:
    print(f"  ... {summary.looked_at} rows looked at, {summary.sent} sent, "
          f"{len(summary.refused)} refused", file=sys.stderr, flush=True)  # fmt: skip


def run_replay(
    connection: psycopg2.extensions.connection, args: argparse.Namespace, now: datetime
) -> int:
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    fixup = Fixup(
        patch=parse_patch(args.patch) if args.patch else None,
        sets=tuple(parse_set(text) for text in args.set),
    )
    sender = None if args.dry_run else KafkaSender(_kafka_config(args))
    summary = replay(connection, sender, selection_of(args, now), fixup, topic=args.topic,
                     batch_size=args.batch_size, progress=_progress)  # fmt: skip
    for row_id, send in summary.would_send:
        print(f"would send {row_id} to {send.topic} as {send.event_id}: {send.value.decode()}")
    for row_id, refused in summary.refused:
        print(f"refused {row_id}: {refused.reason}: {refused.message}")
    for row_id, error in summary.failed:
        print(f"not sent {row_id}: Kafka said {error}")
    verb = "would send" if args.dry_run else "sent"
    count = len(summary.would_send) if args.dry_run else summary.sent
    print(f"{summary.looked_at} not yet replayed: {verb} {count}, refused {len(summary.refused)}"
          f", failed {len(summary.failed)}")  # fmt: skip
    return 1 if summary.refused or summary.failed else 0


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    connection = psycopg2.connect(args.dsn, connect_timeout=10, application_name=PROG)
    try:
        if args.command == "list":
            print_counts(table.counts(connection, selection_of(args, now)))
            return 0
        if args.command == "show":
            found = table.row(connection, args.id)
            if found is None:
                print(f"{PROG}: no dead letter has id {args.id}", file=sys.stderr)
                return 1
            print_row(found, as_hex=args.hex)
            return 0
        if args.command == "replay":
            return run_replay(connection, args, now)
        return run_purge(connection, args, now)
    finally:
        connection.close()


def run_purge(
    connection: psycopg2.extensions.connection, args: argparse.Namespace, now: datetime
) -> int:
    if args.older_than is None and not args.replayed:
        raise UsageError(
            "purge needs --older-than DAYS or --replayed (it never deletes everything)"
        )
    selection = selection_of(args, now)
    if args.older_than is not None:
        if not 0 <= args.older_than <= MAX_PURGE_DAYS:
            raise UsageError(f"--older-than must be 0 to {MAX_PURGE_DAYS} days")
        cutoff = now - timedelta(days=args.older_than)
        until = cutoff if selection.until is None else min(cutoff, selection.until)
        selection = Selection(**{**selection.__dict__, "until": until})
    if args.replayed:
        selection = Selection(**{**selection.__dict__, "replayed": True})
    print(f"purged {table.purge(connection, selection)} dead letters")
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not args.dsn:
        print(f"{PROG}: --dsn or EVENTFLEET_POSTGRES_DSN is required", file=sys.stderr)
        return 2
    try:
        return run(args)
    except (UsageError, SelectionError, FixupError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    except psycopg2.Error as error:
        print(f"{PROG}: PostgreSQL: {str(error).strip()}", file=sys.stderr)
        return 1
