"""The interface between the loop and a mode.

The loop owns Kafka, the transaction, offsets, the DLQ and Redis connections; a mode only turns
parsed events into rows (inside the loop's transaction) and describes the Redis values that
mirror those rows (the types of `mirror.ops`). Redis values are absolute and come from PostgreSQL
(rows returned by the upsert, or read back for a full resync), never increments, so Redis
converges after any replay.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name
from psycopg2.extensions import cursor as Cursor  # noqa: N812

from eventfleet.consumer.batch import Good
from eventfleet.consumer.mirror.ops import BoardFloors, RedisOp
from eventfleet.contract.names import Mode as ModeName

# What a write returns: the Redis values of its rows, built when called with the mirror's board
# floors. The loop calls it after the commit, in its polling thread: turning thousands of
# returned rows into values then is not on the database thread's clock, which bounds the
# throughput.
RedisValues = Callable[[BoardFloors], list[RedisOp]]


def no_redis_values(floors: BoardFloors) -> list[RedisOp]:  # noqa: ARG001 - RedisValues
    return []


class Staging:
    """A temporary table per connection for COPY-then-upsert (COPY cannot upsert). Created
    outside the batch transaction, so a rolled-back batch does not take it away."""

    def __init__(self, ddl: str, table: str) -> None:
        self.ddl = ddl
        self.table = table
        self._on: Connection | None = None
        self._filled = False  # rows may be left from an earlier write of this transaction

    def ensure(self, connection: Connection) -> bool:
        """Before each batch transaction: create it on a new connection (True when it was
        (re)created). The table is ON COMMIT DELETE ROWS, so a transaction starts with it empty."""
        self._filled = False
        if self._on is connection:
            return False
        with connection.cursor() as cursor:
            cursor.execute(self.ddl)
        connection.commit()
        self._on = connection
        return True

    def load(self, cursor: Cursor, columns: str, lines: list[str]) -> None:
        """COPY `lines` in. The upsert reads the table without emptying it (deleting every
        staged row cost a fifth of the upsert); only a second write in the same transaction
        (a bisected slice) empties it first."""
        if self._filled:
            cursor.execute(f"DELETE FROM {self.table}")  # noqa: S608 - a constant name
        copy_lines(cursor, self.table, columns, lines)
        self._filled = True


def copy_lines(cursor: Cursor, table: str, columns: str, lines: list[str]) -> None:
    """COPY text-format lines (tab-separated, newline-terminated) into `table`."""
    data = "".join(lines).encode()
    # In one piece: psycopg2 reads its file in chunks (8 KB by default) and takes the GIL back
    # for each one, waiting behind the parsing thread every time.
    cursor.copy_expert(
        f"COPY {table} ({columns}) FROM STDIN", io.BytesIO(data), size=max(len(data), 8192)
    )


class Mode(Protocol):
    name: ModeName
    # Keys of this mode's Redis values start with this (None: the mode does not use Redis).
    redis_prefix: str | None
    # The table of event_ids this mode counted (see dedup; None: the mode needs none, e.g. the
    # logger, whose primary key is the event_id), and the event types it counts (None: all).
    counted_events_table: str | None
    counted_types: frozenset[str] | None

    def prepare(self, connection: Connection, events: Sequence[Good], now: datetime) -> None:
        """Before the batch transaction, in transactions of its own (e.g. create partitions)."""

    def stage(self, events: Sequence[Good], now: datetime) -> object:
        """Pure: write()'s work that needs no database (aggregates, COPY text) for exactly
        `events`. The loop calls it in the polling thread, so that the database thread spends
        its time on the database."""
        ...

    def write(
        self, cursor: Cursor, events: Sequence[Good], now: datetime, staged: object = None
    ) -> RedisValues:
        """Write the rows for `events` inside the loop's transaction; return the Redis values
        that mirror what was written (built when called, after the commit). `staged` is
        stage(events, now) when the loop has it (None: compute it here). A psycopg2 DataError
        or IntegrityError means one of the events is unacceptable to the database (the loop
        bisects to find it)."""
        ...

    def snapshot(self, connection: Connection, now: datetime) -> Iterator[list[RedisOp]]:
        """Everything Redis should hold, read from PostgreSQL in chunks (full resync)."""
        ...

    def reread(self, connection: Connection, keys: Sequence[str]) -> list[RedisOp]:
        """The whole current values of these Redis keys, read from PostgreSQL: for the hashes a
        HashChange could not be applied to (they had missed a change)."""
        ...

    def maintain(self, connection: Connection, now: datetime) -> None:
        """Periodic housekeeping (partitions, expired boards), in transactions of its own."""
