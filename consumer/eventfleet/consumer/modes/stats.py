"""stats: per-player aggregates in `player_statistics`, mirrored to Redis hashes
`player_stats:{game_id}:{player_id}` (db 0 by default).

Each batch is aggregated in memory (one delta per player), COPYed into a staging table and
upserted in one statement; the upsert returns the rows' new absolute values, formatted for
Redis by PostgreSQL, and those are what Redis gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Final, NamedTuple

from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name
from psycopg2.extensions import cursor as Cursor  # noqa: N812

from eventfleet.consumer.aggregate import aggregate_stats, stats_redis_key
from eventfleet.consumer.batch import Good
from eventfleet.consumer.modes.base import (
    HashSet,
    RedisOp,
    RedisValues,
    Staging,
    no_redis_values,
)
from eventfleet.consumer.settings import ConsumerSettings, Mode

ADDED: Final = (
    "total_events",
    "logins",
    "logouts",
    "level_ups",
    "matches_played",
    "achievements",
    "purchases",
    "wins",
    "total_score",
    "kills",
    "deaths",
    "total_spent",
)
COLUMNS: Final = (
    "game_id",
    "player_id",
    *ADDED,
    "other_events",
    "high_score",
    "max_level",
    "first_seen",
    "last_seen",
)
# What Redis gets, formatted by PostgreSQL (cheaper than converting every value in Python).
REDIS_FIELDS: Final = (
    *ADDED,
    "other_events",
    "high_score",
    "max_level",
    "first_seen",
    "last_seen",
    "version",
)
_TIMES: Final = ("first_seen", "last_seen")
_ISO: Final = '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\''
# Always 32 characters: years have four digits (events are validated to lie between 2000 and
# shortly after now), microseconds are always written.
_ISO_LENGTH: Final = 32


def _resp_bulk(column: str) -> str:
    """SQL for one value as a RESP bulk string ($length CRLF value CRLF). concat evaluates each
    argument on its own, so a time's length is the constant rather than a second to_char (the
    costliest call of the row)."""
    if column in _TIMES:
        text = f"to_char({column} AT TIME ZONE 'UTC', {_ISO})"
        return f"'${_ISO_LENGTH}', E'\\r\\n', {text}, E'\\r\\n'"
    return f"'$', octet_length({column}::text), E'\\r\\n', {column}::text, E'\\r\\n'"


# The values in one text, packed as the RESP bulk strings the mirror sends: packing 19 values
# per row cost Python more than it costs PostgreSQL here, and one column per row is cheaper to
# fetch than 19.
REDIS_PACKED: Final = "concat(" + ", ".join(_resp_bulk(c) for c in REDIS_FIELDS) + ")"
_SET: Final = ",\n    ".join(
    [
        *(f"{c} = s.{c} + EXCLUDED.{c}" for c in ADDED),
        (
            "other_events = CASE WHEN EXCLUDED.other_events = '{}'::jsonb THEN s.other_events "
            "ELSE eventfleet_add_counts(s.other_events, EXCLUDED.other_events) END"
        ),
        "high_score = GREATEST(s.high_score, EXCLUDED.high_score)",
        "max_level = GREATEST(s.max_level, EXCLUDED.max_level)",
        "first_seen = LEAST(s.first_seen, EXCLUDED.first_seen)",
        "last_seen = GREATEST(s.last_seen, EXCLUDED.last_seen)",
        "version = s.version + 1",
        "updated_at = now()",
    ]
)
_COLUMN_LIST: Final = ", ".join(COLUMNS)
# Ordered so that replicas sharing players lock their rows in the same order (no deadlock), in
# the primary key's order (player first: see migration 0004).
UPSERT: Final = f"""
INSERT INTO player_statistics AS s ({_COLUMN_LIST})
SELECT {_COLUMN_LIST} FROM stats_staging ORDER BY player_id, game_id
ON CONFLICT (player_id, game_id) DO UPDATE SET
    {_SET}
RETURNING game_id, player_id, {REDIS_PACKED}
"""  # noqa: S608 - built from constants
STAGING: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS stats_staging "
    "(LIKE player_statistics INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)


def redis_hash(row: Sequence[str]) -> HashSet:
    """A row of (game_id, player_id, REDIS_PACKED) as its Redis hash."""
    return HashSet(stats_redis_key(row[0], row[1]), REDIS_FIELDS, (), row[2])


class StatsStaged(NamedTuple):
    lines: list[str]  # COPY text, one line per player


class StatsMode:
    name: Mode = "stats"
    redis_prefix: str | None = "player_stats:"

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self._staging = Staging(STAGING, "stats_staging")

    def prepare(self, connection: Connection, events: Sequence[Good], now: datetime) -> None:
        self._staging.ensure(connection)

    def stage(self, events: Sequence[Good], now: datetime) -> StatsStaged:
        deltas = aggregate_stats(g.event for g in events)
        dumps = json.dumps
        lines = []
        times: dict[datetime, str] = {}  # each distinct time formatted once a batch
        # COPY text: identifiers, numbers, ISO times and {type: count} JSON hold no tab,
        # newline or backslash (the event schema restricts ids and type names).
        for (game_id, player_id), d in deltas.items():
            first = times.get(d.first_seen)
            if first is None:
                first = times[d.first_seen] = d.first_seen.isoformat()
            last = times.get(d.last_seen)
            if last is None:
                last = times[d.last_seen] = d.last_seen.isoformat()
            lines.append(
                f"{game_id}\t{player_id}\t{d.total_events}\t{d.logins}\t{d.logouts}\t"
                f"{d.level_ups}\t{d.matches_played}\t{d.achievements}\t{d.purchases}\t{d.wins}\t"
                f"{d.total_score}\t{d.kills}\t{d.deaths}\t{d.total_spent}\t"
                f"{dumps(d.other_events) if d.other_events else '{}'}\t{d.high_score}\t"
                f"{d.max_level}\t{first}\t{last}\n"
            )
        return StatsStaged(lines)

    def write(
        self, cursor: Cursor, events: Sequence[Good], now: datetime, staged: object = None
    ) -> RedisValues:
        rows = staged if isinstance(staged, StatsStaged) else self.stage(events, now)
        if not rows.lines:
            return no_redis_values
        self._staging.load(cursor, _COLUMN_LIST, rows.lines)
        cursor.execute(UPSERT)
        returned = cursor.fetchall()
        return lambda _floors: [redis_hash(row) for row in returned]

    def snapshot(self, connection: Connection, now: datetime) -> Iterator[list[RedisOp]]:
        with connection.cursor(name="stats_snapshot") as cursor:
            cursor.itersize = 5000
            cursor.execute(f"SELECT game_id, player_id, {REDIS_PACKED} FROM player_statistics")  # noqa: S608 - constants
            while True:
                rows = cursor.fetchmany(5000)
                if not rows:
                    break
                yield [redis_hash(row) for row in rows]
        connection.commit()

    def maintain(self, connection: Connection, now: datetime) -> None:
        return
