"""The SQL of `eventfleet dlq` against dlq_events (sql/shared/0001 and 0003)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name

from eventfleet.consumer.dlq.fixup import DeadLetter, Send
from eventfleet.consumer.dlq.selection import Selection, where

COUNTS: Final = """
SELECT consumer_group, reason, date_trunc('hour', failed_at) AS hour,
       count(*), count(replayed_at)
FROM dlq_events WHERE {where}
GROUP BY 1, 2, 3 ORDER BY 3 DESC, 1, 2
"""
ROW: Final = """
SELECT id, consumer_group, topic, kafka_partition, kafka_offset, raw, reason, message, errors,
       failed_at, replayed_at, replayed_to, replayed_event_id
FROM dlq_events WHERE id = %s
"""
# Rows are taken in id order after a cursor, so a refused row is passed over, not taken again;
# SKIP LOCKED lets two replays of overlapping selections split the rows instead of both sending.
NEXT_TO_REPLAY: Final = """
SELECT id, consumer_group, topic, kafka_partition, kafka_offset, raw FROM dlq_events
WHERE {where} AND id > %s AND replayed_at IS NULL
ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
MARK_REPLAYED: Final = """
UPDATE dlq_events SET replayed_at = now(), replayed_to = %s, replayed_event_id = %s
WHERE id = %s
"""
PURGE: Final = "DELETE FROM dlq_events WHERE {where}"
EXPIRE: Final = """
DELETE FROM dlq_events WHERE id IN (
    SELECT id FROM dlq_events WHERE failed_at < now() - make_interval(days => %s) LIMIT %s)
"""


@dataclass(frozen=True)
class Count:
    group: str
    reason: str
    hour: datetime
    rows: int
    replayed: int


@dataclass(frozen=True)
class Row:
    letter: DeadLetter
    reason: str
    message: str
    errors: list[dict[str, Any]]
    failed_at: datetime
    replayed_at: datetime | None
    replayed_to: str | None
    replayed_event_id: str | None


def counts(connection: Connection, selection: Selection) -> list[Count]:
    condition, params = where(selection)
    with connection.cursor() as cursor:
        cursor.execute(COUNTS.format(where=condition), params)
        return [Count(*row) for row in cursor.fetchall()]


def row(connection: Connection, row_id: int) -> Row | None:
    with connection.cursor() as cursor:
        cursor.execute(ROW, (row_id,))
        found = cursor.fetchone()
    if found is None:
        return None
    row_id, group, topic, partition, offset, raw, reason, message, errors, failed_at = found[:10]
    replayed_at, replayed_to, replayed_event_id = found[10:]
    return Row(
        letter=DeadLetter(row_id, group, topic, partition, offset, bytes(raw)),
        reason=reason,
        message=message,
        errors=errors,
        failed_at=failed_at,
        replayed_at=replayed_at,
        replayed_to=replayed_to,
        replayed_event_id=str(replayed_event_id) if replayed_event_id else None,
    )


def next_to_replay(
    connection: Connection, selection: Selection, after_id: int, limit: int
) -> list[DeadLetter]:
    """Up to `limit` unreplayed rows after `after_id`, locked for this transaction."""
    condition, params = where(selection)
    with connection.cursor() as cursor:
        cursor.execute(NEXT_TO_REPLAY.format(where=condition), [*params, after_id, limit])
        return [
            DeadLetter(row_id, group, topic, partition, offset, bytes(raw))
            for row_id, group, topic, partition, offset, raw in cursor.fetchall()
        ]


def mark_replayed(connection: Connection, sent: list[tuple[int, Send]]) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(
            MARK_REPLAYED, [(send.topic, str(send.event_id), row_id) for row_id, send in sent]
        )


def purge(connection: Connection, selection: Selection) -> int:
    condition, params = where(selection)
    with connection, connection.cursor() as cursor:
        cursor.execute(PURGE.format(where=condition), params)
        return int(cursor.rowcount)


def expire(connection: Connection, retention_days: int, chunk: int = 10_000) -> int:
    """Delete rows older than the retention, one chunk a transaction; how many went."""
    deleted = 0
    while True:
        with connection, connection.cursor() as cursor:
            cursor.execute(EXPIRE, (retention_days, chunk))
            deleted += cursor.rowcount
            if cursor.rowcount < chunk:
                return deleted
