"""logger: every valid event into `events`, deduplicated on event_id.

Bulk path: COPY straight into `events`; only when that meets a duplicate id does the batch go
through a staging table and INSERT ... ON CONFLICT DO NOTHING (COPY cannot skip duplicates).
`events` is partitioned by UTC day; partitions are created ahead of time and dropped whole when
they expire (no bulk DELETE).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, NamedTuple, cast
from uuid import UUID

import orjson
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name
from psycopg2.extensions import cursor as Cursor  # noqa: N812

from eventfleet.consumer.aggregate import (
    PARTITION_PREFIX,
    earliest_kept_day,
    expired_partitions,
    partition_name,
    partitions_wanted,
)
from eventfleet.consumer.batch import Good
from eventfleet.consumer.mirror.ops import RedisOp
from eventfleet.consumer.modes.base import RedisValues, Staging, copy_lines, no_redis_values
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.contract.names import Mode

log = logging.getLogger(__name__)

# Serialises partition DDL between logger replicas (IF NOT EXISTS alone races on the catalog).
PARTITION_LOCK_KEY: Final = 0x6576_6600_0002
_COLUMNS: Final = (
    "event_id, event_time, event_type, game_id, player_id, data, "
    "kafka_topic, kafka_partition, kafka_offset"
)

# `data` is staged as text and parsed into jsonb once, by the INSERT.
STAGING: Final = """
CREATE TEMP TABLE IF NOT EXISTS events_staging (
    event_id uuid, event_time timestamptz, event_type text, game_id text, player_id text,
    data text, kafka_topic text, kafka_partition integer, kafka_offset bigint
) ON COMMIT DELETE ROWS
"""
INSERT: Final = f"""
INSERT INTO events ({_COLUMNS})
SELECT event_id, event_time, event_type, game_id, player_id, data::jsonb,
       kafka_topic, kafka_partition, kafka_offset
FROM events_staging
ON CONFLICT DO NOTHING
"""  # noqa: S608 - constants


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def data_json(data: Mapping[str, Any]) -> str:
    """`data` as compact JSON text (Decimal amounts as strings). orjson writes it; the standard
    library only takes the rare values orjson refuses (integers beyond 64 bits). Both escape
    control characters, and PostgreSQL reads either into the same jsonb."""
    try:
        return orjson.dumps(data, default=_json_default).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, separators=(",", ":"), default=_json_default)


class LoggerStaged(NamedTuple):
    lines: list[str]  # COPY text, one line per event
    expired: int  # events already past retention (not written)


class LoggerMode:
    name: Mode = "logger"
    redis_prefix: str | None = None
    counted_events_table: str | None = None
    counted_types: frozenset[str] | None = None

    def __init__(self, settings: ConsumerSettings) -> None:
        self.retention_days = settings.retention_days
        self.ahead_days = settings.partitions_ahead_days
        self._partitions: set[date] = set()
        self._staging = Staging(STAGING, "events_staging")
        self.expired_skipped = 0

    # -- before the transaction --------------------------------------------------------------

    def prepare(self, connection: Connection, events: Sequence[Good], now: datetime) -> None:
        if self._staging.ensure(connection):
            self._partitions.clear()  # a new connection: do not trust what we knew
        days = {g.event.timestamp.date() for g in events}
        earliest = earliest_kept_day(now.date(), self.retention_days)
        missing = {
            d for d in days if d not in self._partitions and (earliest is None or d >= earliest)
        }
        if missing:
            self._create_partitions(connection, missing)

    def _create_partitions(self, connection: Connection, days: set[date]) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
            for day in sorted(days):
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                cursor.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} PARTITION OF events "
                        "FOR VALUES FROM (%s) TO (%s)"
                    ).format(sql.Identifier(partition_name(day))),
                    (start, start + timedelta(days=1)),
                )
        connection.commit()
        self._partitions.update(days)

    # -- pure, before the transaction ---------------------------------------------------------

    def stage(self, events: Sequence[Good], now: datetime) -> LoggerStaged:
        earliest = earliest_kept_day(now.date(), self.retention_days)
        # Event times are UTC: before midnight of the earliest kept day is before that day.
        kept_from = None
        if earliest is not None:
            kept_from = datetime(earliest.year, earliest.month, earliest.day, tzinfo=UTC)
        lines = []
        expired = 0
        # Events of one second share their time: each distinct time is formatted once a batch.
        times: dict[datetime, str] = {}
        for good in events:
            event = good.event
            timestamp = event.timestamp
            if kept_from is not None and timestamp < kept_from:
                expired += 1  # already past retention: its partition is gone
                continue
            when = times.get(timestamp)
            if when is None:
                when = times[timestamp] = timestamp.isoformat()
            record = good.record
            # COPY text format: tab-separated, backslash is the escape. Ids, names and topics
            # have no tabs, newlines or backslashes (the event schema forbids them); JSON
            # escapes control characters, so only its backslashes need doubling. The id goes
            # as 32 hex digits (PostgreSQL reads that form too; cheaper than str()); a Good
            # always has one.
            data = data_json(event.data)
            if "\\" in data:
                data = data.replace("\\", "\\\\")
            lines.append(
                f"{cast(UUID, event.event_id).int:032x}\t{when}\t{event.event_type}\t"
                f"{event.game_id}\t{event.player_id}\t{data}\t"
                f"{record.topic}\t{record.partition}\t{record.offset}\n"
            )
        return LoggerStaged(lines, expired)

    # -- inside the transaction --------------------------------------------------------------

    def write(
        self, cursor: Cursor, events: Sequence[Good], now: datetime, staged: object = None
    ) -> RedisValues:
        rows = staged if isinstance(staged, LoggerStaged) else self.stage(events, now)
        self.expired_skipped += rows.expired
        lines = rows.lines
        if not lines:
            return no_redis_values
        # Fast path: COPY straight into `events`. Duplicate ids are rare (a producer that
        # retried; replays never get here, the offsets fence them off), so only when COPY hits
        # one does the batch go the slower way: staging table, then INSERT ... ON CONFLICT.
        cursor.execute("SAVEPOINT logger_copy")
        try:
            copy_lines(cursor, "events", _COLUMNS, lines)
        except psycopg2.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT logger_copy")
            self._staging.load(cursor, _COLUMNS, lines)
            cursor.execute(INSERT)
        else:
            cursor.execute("RELEASE SAVEPOINT logger_copy")
        return no_redis_values

    # -- around --------------------------------------------------------------------------------

    def snapshot(self, connection: Connection, now: datetime) -> Iterator[list[RedisOp]]:
        return iter(())

    def reread(self, connection: Connection, keys: Sequence[str]) -> list[RedisOp]:
        return []  # no Redis values

    def maintain(self, connection: Connection, now: datetime) -> None:
        today = now.astimezone(UTC).date()
        self._create_partitions(connection, set(partitions_wanted(today, self.ahead_days)))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE p.relname = 'events' AND c.relname LIKE %s",
                (PARTITION_PREFIX + "%",),
            )
            existing = [name for (name,) in cursor.fetchall()]
        expired = expired_partitions(existing, today, self.retention_days)
        if not expired:
            connection.commit()
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
            for name in expired:
                cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        connection.commit()
        self._partitions.clear()
        log.info("dropped expired event partitions", extra={"partitions": expired})
