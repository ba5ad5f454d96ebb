"""PostgreSQL: a batch's transaction (step 3 of the order in runtime.py), the stored offsets,
the DLQ rows, and the connection, migrations and maintenance of one consumer.

The transaction runs in the loop's worker thread; everything else here runs in the polling
thread while no transaction is (on assignment and before maintenance the loop finishes the
batch in flight first). Redis rebuilds read on a connection of their own (mirror_link).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import psycopg2
import psycopg2.extensions
from psycopg2.extras import execute_values

from eventfleet.consumer import dedup, migrate, pg_waits
from eventfleet.consumer.batch import (
    DATABASE_ERROR,
    INTERNAL_ERROR,
    Admission,
    Bad,
    Batch,
    Good,
    admit,
    bisect_failures,
    internal_message,
    restart_recreated,
)
from eventfleet.consumer.dlq import table as dead_letters
from eventfleet.consumer.modes.base import Mode, RedisValues
from eventfleet.consumer.observability import Metrics
from eventfleet.consumer.pg_connection import LazyConnection
from eventfleet.consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)
TP = tuple[str, int]
DLQ_INSERT: Final = """
INSERT INTO dlq_events
    (consumer_group, topic, kafka_partition, kafka_offset, raw, reason, message, errors)
VALUES %s
ON CONFLICT (consumer_group, topic, kafka_partition, kafka_offset) DO NOTHING
"""


# Progress is the sink's (sql/shared/0002): a missing row starts from what the writer's group
# recorded before sink_offsets existed, if anything.
LOCK_OFFSETS: Final = """
INSERT INTO sink_offsets (sink, topic, kafka_partition, next_offset)
SELECT %s, v.topic, v.kafka_partition, coalesce(o.next_offset, -1)
FROM (VALUES {values}) AS v (topic, kafka_partition)
LEFT JOIN consumer_offsets o ON o.consumer_group = %s AND o.topic = v.topic
    AND o.kafka_partition = v.kafka_partition
ON CONFLICT DO NOTHING;
SELECT topic, kafka_partition, next_offset, topic_id FROM sink_offsets
WHERE sink = %s AND (topic, kafka_partition) IN %s
ORDER BY topic, kafka_partition FOR UPDATE
"""
ADVANCE_OFFSETS: Final = """
UPDATE sink_offsets AS o
SET next_offset = v.next_offset, topic_id = v.topic_id, updated_at = now()
FROM (VALUES {values}) AS v (topic, kafka_partition, next_offset, expected, topic_id)
WHERE o.sink = %s AND o.topic = v.topic AND o.kafka_partition = v.kafka_partition
  AND o.next_offset = v.expected
"""
READ_OFFSETS: Final = """
SELECT topic, kafka_partition, next_offset, topic_id FROM sink_offsets
WHERE sink = %s AND (topic, kafka_partition) IN %s
"""


class FencedError(Exception):
    """The stored offset moved under us although we held its lock (should never happen)."""


# What a failed transaction raises (rolled back: nothing was committed, the batch is retried).
TRANSACTION_ERRORS: Final = (psycopg2.Error, FencedError, pg_waits.LockBusyError)


@dataclass(slots=True)
class Outcome:
    admission: Admission
    written: list[Good]
    dlq: list[Bad]
    redis_values: list[RedisValues] = field(default_factory=list)  # one per written slice
    committed_at: float = 0.0
    duplicates: int = 0  # events whose event_id was counted before: not counted again
    recreated: dict[TP, str] = field(default_factory=dict)  # restarted at 0: the new topic id


def _clean(text: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL; a rejection message may quote the input.
    return text.replace("\x00", "\\u0000")


def _database_message(error: psycopg2.Error) -> str:
    lines = (error.pgerror or str(error) or type(error).__name__).strip().splitlines()
    return _clean(lines[0] if lines else type(error).__name__)


class Store:
    """One sink's PostgreSQL side: `mode` writes its rows inside transact()'s transaction."""

    def __init__(self, settings: ConsumerSettings, sink: str, mode: Mode, metrics: Metrics) -> None:
        self.settings = settings
        self.sink = sink
        self.mode = mode  # the consumer's: a write replaced on it is the one called here
        self.metrics = metrics
        # The batch transactions' connection (and that of work done while none is running).
        self._connection = LazyConnection(settings)
        self._next_maintenance = 0.0

    # --------------------------------------------------------------- migrations and the sink

    def apply_migrations(self) -> list[migrate.Migration]:
        """Apply the mode's pending migrations (raises migrate's errors)."""
        settings = self.settings
        return migrate.apply(
            settings.postgres_dsn,
            settings.mode,
            lock_timeout_seconds=settings.postgres_lock_timeout_seconds,
        )

    def claim_sink(self, me: migrate.SinkOwner) -> migrate.SinkOwner:
        """Who owns the sink now: `me` unless another EventConsumer does."""
        return migrate.claim_sink(self.settings.postgres_dsn, self.settings.mode, me)

    # ------------------------------------------------------------------------- connections

    def _db(self) -> psycopg2.extensions.connection:
        return self._connection.get()

    def close(self) -> None:
        self._connection.close()

    def stored_offsets(self, tps: Sequence[TP]) -> dict[TP, tuple[int, str | None]]:
        """The stored next offsets of `tps` and the topic ids they count in; {} when PostgreSQL
        cannot say now."""
        try:
            return self._read_offsets(tps) if tps else {}
        except psycopg2.Error as error:
            # The transaction's offset check still guarantees correctness; we only lose the
            # head start of seeking to the right place now.
            log.warning("cannot read stored offsets on assignment", extra={"error": str(error)})
            return {}

    def _read_offsets(self, tps: Sequence[TP]) -> dict[TP, tuple[int, str | None]]:
        connection = self._db()
        try:
            with connection.cursor() as cursor:
                cursor.execute(READ_OFFSETS, (self.sink, tuple(tps)))
                found = {(t, p): (o, topic_id) for t, p, o, topic_id in cursor.fetchall()}
            connection.commit()
        except psycopg2.Error:
            self.close()
            raise
        return found

    def maintenance_due(self) -> bool:
        return time.monotonic() >= self._next_maintenance

    def maintain(self) -> None:
        if time.monotonic() < self._next_maintenance:
            return
        self._next_maintenance = time.monotonic() + self.settings.maintenance_interval_seconds
        try:
            self.mode.maintain(self._db(), datetime.now(UTC))
            table = self.mode.counted_events_table
            if table is not None:
                dedup.expire(self._db(), table, self.settings.dedup_window_hours)
            dead_letters.expire(self._db(), self.settings.dlq_retention_days)
        except psycopg2.Error as error:
            log.warning("maintenance failed; will retry", extra={"error": str(error).strip()})
            self.close()
            self._next_maintenance = time.monotonic() + 30

    # ------------------------------------------------------------------ the batch transaction

    def transact(
        self, batch: Batch, topic_ids: dict[str, str], accepted_gaps: dict[TP, int]
    ) -> Outcome:
        """Step 3: the batch's one transaction, committed; raises psycopg2.Error, FencedError
        or, when a lock wait timed out, pg_waits.LockBusyError naming the lock and its holders
        (rolled back: nothing was committed)."""
        now = batch.now
        connection = self._db()
        try:
            self.mode.prepare(connection, batch.good, now)
            with connection.cursor() as cursor:
                outcome = self._write_batch(cursor, batch, topic_ids, accepted_gaps)
            connection.commit()
            outcome.committed_at = time.time()
        except BaseException as error:
            try:
                connection.rollback()
            except psycopg2.Error:
                self.close()
                raise error  # noqa: B904 - the transaction's error, not the rollback's
            if isinstance(error, pg_waits.LockBusyError):
                raise error.with_holders(
                    pg_waits.row_lock_holders(connection, "sink_offsets")
                ) from error.__cause__
            if pg_waits.is_lock_timeout(error):
                raise pg_waits.LockBusyError("other", "a lock the batch needs") from error
            raise
        return outcome

    def _write_batch(
        self,
        cursor: psycopg2.extensions.cursor,
        batch: Batch,
        topic_ids: dict[str, str],
        accepted_gaps: dict[TP, int],
    ) -> Outcome:
        records, now, staged = batch.records, batch.now, batch.staged
        group = self.settings.group
        tps = sorted({r.tp for r in records})
        rows = self._lock_offsets(cursor, tps)
        expected: dict[TP, int] = {(t, p): o for t, p, o, _ in rows}
        stored, recreated = restart_recreated(
            {(t, p): (o, topic_id) for t, p, o, topic_id in rows}, topic_ids
        )
        outcome = self._admitted(batch, stored, accepted_gaps)
        goods, dlq = outcome.written, outcome.dlq
        if len(outcome.admission.records) != len(records):
            staged = None  # it was for all of `good`
        admission = outcome.admission
        # (b) Once per event_id: ids counted before (a client's retry) are not counted again.
        table = self.mode.counted_events_table
        if table is not None and goods:
            fresh = self._count_once(cursor, table, goods)
            if len(fresh) != len(goods):
                outcome.duplicates += len(goods) - len(fresh)
                goods = outcome.written = fresh
                staged = None

        def attempt(items: Sequence[Good]) -> tuple[str, str] | None:
            cursor.execute("SAVEPOINT batch")
            try:
                # The staged rows are for the whole of `goods`: a bisected slice is staged again.
                values = self.mode.write(cursor, items, now, staged if items is goods else None)
            except (psycopg2.DataError, psycopg2.IntegrityError) as error:
                cursor.execute("ROLLBACK TO SAVEPOINT batch")
                return DATABASE_ERROR, _database_message(error)
            except psycopg2.Error:
                raise  # the database or the connection failed, not this record: retry
            except Exception as error:
                cursor.execute("ROLLBACK TO SAVEPOINT batch")
                if len(items) == 1:
                    self.metrics.internal_errors.labels("write").inc()
                    log.exception("a record made the mode raise; it goes to the DLQ")
                return INTERNAL_ERROR, internal_message(error)
            cursor.execute("RELEASE SAVEPOINT batch")
            outcome.redis_values.append(values)
            return None

        poisoned = bisect_failures(goods, attempt)
        if poisoned:
            guilty = {id(g) for g, _ in poisoned}
            outcome.written = [g for g in goods if id(g) not in guilty]
            dlq.extend(Bad(g.record, reason, message) for g, (reason, message) in poisoned)
            if table is not None:
                types = self.mode.counted_types
                dedup.forget(
                    cursor,
                    table,
                    [g for g, _ in poisoned if types is None or g.event.event_type in types],
                )
        # (c) DLQ rows for rejected and guilty records.
        if dlq:
            execute_values(cursor, DLQ_INSERT, [_dlq_row(group, b) for b in dlq])
        # (d) The new offsets, compare-and-set against what (a) read, with the topic's id.
        advanced = admission.next_offsets
        if advanced:
            self._advance(cursor, advanced, expected, topic_ids)
            outcome.recreated = {tp: topic_ids[tp[0]] for tp in recreated if tp in advanced}
        return outcome

    def _lock_offsets(
        self, cursor: psycopg2.extensions.cursor, tps: list[TP]
    ) -> list[tuple[str, int, int, str | None]]:
        """(a) One round trip: create missing offset rows, then lock them (the SELECT's rows are
        what comes back). A row locked by a transaction that does not finish (its owner cut
        off) is waited for only lock_timeout."""
        try:
            cursor.execute(
                LOCK_OFFSETS.format(values=",".join(["(%s, %s::integer)"] * len(tps))),
                [
                    self.sink,
                    *(v for tp in tps for v in tp),
                    self.settings.group,
                    self.sink,
                    tuple(tps),
                ],
            )
        except psycopg2.errors.LockNotAvailable as error:
            partitions = ", ".join(f"{t}/{p}" for t, p in tps)
            what = f"the lock on the sink's offset rows ({partitions})"
            raise pg_waits.LockBusyError("offset_rows", what) from error
        return cursor.fetchall()

    def _admitted(
        self, batch: Batch, stored: dict[TP, int], accepted_gaps: dict[TP, int]
    ) -> Outcome:
        """The batch's records that continue each partition from its stored offset."""
        admission = admit(batch.records, stored, accepted_gaps)
        if len(admission.records) == len(batch.records):  # the usual case: all of it
            return Outcome(
                admission, list(batch.good), list(batch.bad), duplicates=len(batch.repeated)
            )
        keep = {(r.tp, r.offset) for r in admission.records}
        return Outcome(
            admission,
            [g for g in batch.good if (g.record.tp, g.record.offset) in keep],
            [b for b in batch.bad if (b.record.tp, b.record.offset) in keep],
            duplicates=sum((g.record.tp, g.record.offset) in keep for g in batch.repeated),
        )

    def _count_once(
        self, cursor: psycopg2.extensions.cursor, table: str, goods: list[Good]
    ) -> list[Good]:
        """`goods` without the events whose event_id this sink counted before, recording the
        others' ids (in the batch's transaction)."""
        types = self.mode.counted_types
        counted = goods if types is None else [g for g in goods if g.event.event_type in types]
        seen = dedup.already_counted(cursor, table, counted)
        if not seen:
            return goods
        return [
            g
            for g in goods
            if str(g.event.event_id) not in seen
            or (types is not None and g.event.event_type not in types)
        ]

    def _advance(
        self,
        cursor: psycopg2.extensions.cursor,
        advanced: dict[TP, int],
        expected: dict[TP, int],
        topic_ids: dict[str, str],
    ) -> None:
        """Compare-and-set of every advanced partition's offset, in one statement."""
        values = ",".join(["(%s, %s::integer, %s::bigint, %s::bigint, %s::text)"] * len(advanced))
        cursor.execute(
            ADVANCE_OFFSETS.format(values=values),
            [
                *(
                    v
                    for (t, p), n in advanced.items()
                    for v in (t, p, n, expected[(t, p)], topic_ids[t])
                ),
                self.sink,
            ],
        )
        if cursor.rowcount != len(advanced):
            message = f"an offset of {sorted(advanced)} moved under its lock"
            raise FencedError(message)


def _dlq_row(group: str, bad: Bad) -> tuple[Any, ...]:
    record = bad.record
    errors = json.dumps([{"field": f, "message": _clean(m)} for f, m in bad.errors])
    return (
        group,
        record.topic,
        record.partition,
        record.offset,
        psycopg2.Binary(record.value),
        bad.reason,
        _clean(bad.message),
        errors,
    )
