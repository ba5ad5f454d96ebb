"""Once per event, not only per Kafka record: the event_ids a mode has counted, kept in its own
table (`<mode>_counted_events`) and checked inside the batch's transaction, so that a client's
retry (the same event_id in another record) is not counted twice, across replicas, restarts and
rebalances, within the dedup window.

The check and the aggregates commit together: a batch that rolls back leaves no id behind, and
an id is never recorded for an event that was not counted. Ids older than the window are
deleted by maintenance; a retry that arrives after that is counted again (the README says so).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Final

from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name
from psycopg2.extensions import cursor as Cursor  # noqa: N812

from eventfleet.consumer.batch import Good

log = logging.getLogger(__name__)

# Records the batch's ids and returns those that were there already, in one round trip.
_COUNT_ONCE: Final = """
WITH batch AS (SELECT DISTINCT unnest(%s::uuid[]) AS event_id),
fresh AS (
    INSERT INTO {table} (event_id) SELECT event_id FROM batch
    ON CONFLICT DO NOTHING RETURNING event_id
)
SELECT b.event_id::text FROM batch b
WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.event_id = b.event_id)
"""
_FORGET: Final = "DELETE FROM {table} WHERE event_id = ANY(%s::uuid[])"
# In chunks, each its own transaction: a large backlog of expired ids never holds a long lock.
_EXPIRE: Final = """
DELETE FROM {table} WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {table} WHERE counted_at < now() - make_interval(hours => %s) LIMIT %s
))
"""
EXPIRE_CHUNK: Final = 50_000
EXPIRE_SECONDS: Final = 5.0  # at most this long per maintenance run; the next one goes on


def _id_array(goods: Sequence[Good]) -> str:
    return "{" + ",".join([str(g.event.event_id) for g in goods]) + "}"


def already_counted(cursor: Cursor, table: str, goods: Sequence[Good]) -> set[str]:
    """Record the events' ids as counted; returns the ids (as text) that were counted before."""
    if not goods:
        return set()
    cursor.execute(_COUNT_ONCE.format(table=table), (_id_array(goods),))
    return {row[0] for row in cursor.fetchall()}


def forget(cursor: Cursor, table: str, goods: Sequence[Good]) -> None:
    """Take back the ids of events that were not counted after all (the database refused them:
    they go to the DLQ, and a corrected replay must count)."""
    if goods:
        cursor.execute(_FORGET.format(table=table), (_id_array(goods),))


def expire(connection: Connection, table: str, window_hours: int) -> int:
    """Delete ids counted longer ago than the window; returns how many went."""
    deleted = 0
    deadline = time.monotonic() + EXPIRE_SECONDS
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(_EXPIRE.format(table=table), (window_hours, EXPIRE_CHUNK))
            count = cursor.rowcount
        connection.commit()
        deleted += count
        if count < EXPIRE_CHUNK:
            break
    if deleted:
        log.info("expired counted event ids", extra={"table": table, "deleted": deleted})
    return deleted
