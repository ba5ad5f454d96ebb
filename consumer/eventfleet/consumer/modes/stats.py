"""stats: per-player aggregates in `player_statistics`, mirrored to Redis hashes
`player_stats:{game_id}:{player_id}` (db 0 by default).

Each batch is aggregated in memory (one delta per player), COPYed into a staging table and
upserted in one statement; the upsert returns the new absolute values it changed in each row,
formatted for Redis by PostgreSQL, and those are what Redis gets (a full resync, or the rewrite
of a hash that missed a change, reads every value).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name
from psycopg2.extensions import cursor as Cursor  # noqa: N812

from eventfleet.consumer.aggregate import aggregate_stats
from eventfleet.consumer.batch import Good
from eventfleet.consumer.mirror.ops import HashChange, HashSet, RedisOp
from eventfleet.consumer.modes.base import RedisValues, Staging, no_redis_values
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.contract.names import STATS_KEY_PREFIX, Mode, stats_key

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


# The values in one text, packed as the RESP bulk strings the mirror sends: packing 18 values
# per row cost Python more than it costs PostgreSQL here, and one column per row is cheaper to
# fetch than 18.
REDIS_PACKED: Final = "concat(" + ", ".join(_resp_bulk(c) for c in REDIS_FIELDS) + ")"

# Bit i of `changed_fields` (migration 0005) stands for REDIS_FIELDS[i]: the values the row's
# last upsert changed. Redis is sent those alone, as a HashChange: an event changes 4 to 9 of
# the 18, and Redis spends about half as long on a 7-field write as on a full one. A new row
# has every bit (the column's default, -1).
FIELD_BITS: Final = {column: 1 << i for i, column in enumerate(REDIS_FIELDS)}
ALL_FIELDS: Final = (1 << len(REDIS_FIELDS)) - 1


def _changed_when(column: str) -> str:
    """SQL: whether the update changes `column` (s: the stored row, EXCLUDED: the batch's
    delta). Sums change with a non-zero delta, maxima and last_seen when the batch's value is
    higher, first_seen when it is earlier."""
    if column in ADDED:
        return f"EXCLUDED.{column} <> 0"
    if column == "other_events":
        return "EXCLUDED.other_events <> '{}'::jsonb"
    if column == "first_seen":
        return "EXCLUDED.first_seen < s.first_seen"
    return f"EXCLUDED.{column} > s.{column}"


_CHANGED: Final = " | ".join(
    [
        str(FIELD_BITS["version"]),  # every update is a new version
        *(
            f"CASE WHEN {_changed_when(c)} THEN {FIELD_BITS[c]} ELSE 0 END"
            for c in REDIS_FIELDS
            if c != "version"
        ),
    ]
)


def _resp_pair(column: str) -> str:
    """SQL for the field's name and value as two RESP bulk strings."""
    return f"concat(E'${len(column)}\\r\\n{column}\\r\\n', {_resp_bulk(column)})"


# The changed values as (field, value) pairs of RESP bulk strings, `version` first (the mirror's
# script compares it before writing the rest); concat skips the NULL of each unchanged field.
REDIS_CHANGES: Final = (
    "concat("
    + ", ".join(
        [
            _resp_pair("version"),
            *(
                f"CASE WHEN changed_fields & {FIELD_BITS[c]} <> 0 THEN {_resp_pair(c)} END"
                for c in REDIS_FIELDS
                if c != "version"
            ),
        ]
    )
    + ")"
)
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
        f"changed_fields = {_CHANGED}",
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
RETURNING game_id, player_id, changed_fields, {REDIS_CHANGES}
"""  # noqa: S608 - built from constants
STAGING: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS stats_staging "
    "(LIKE player_statistics INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)


def redis_hash(row: Sequence[str]) -> HashSet:
    """A row of (game_id, player_id, REDIS_PACKED) as its Redis hash."""
    return HashSet(stats_key(row[0], row[1]), REDIS_FIELDS, (), row[2])


def redis_change(row: Sequence[Any]) -> HashChange:
    """A row of (game_id, player_id, changed_fields, REDIS_CHANGES) as its Redis change."""
    return HashChange(stats_key(row[0], row[1]), (row[2] & ALL_FIELDS).bit_count(), row[3])


# The stored rows of some Redis keys (ids hold no ':'; COLLATE: unnest's texts would otherwise
# carry the database's collation, which cannot be compared with the key columns' "C").
REREAD: Final = f"""
SELECT game_id, player_id, {REDIS_PACKED} FROM player_statistics
WHERE (player_id, game_id) IN (
    SELECT p COLLATE "C", g COLLATE "C" FROM unnest(%s::text[], %s::text[]) AS u(g, p)
)
"""  # noqa: S608 - built from constants


class StatsStaged(NamedTuple):
    lines: list[str]  # COPY text, one line per player


class StatsMode:
    name: Mode = "stats"
    redis_prefix: str | None = STATS_KEY_PREFIX
    counted_events_table: str | None = "stats_counted_events"
    counted_types: frozenset[str] | None = None

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
        return lambda _floors: [redis_change(row) for row in returned]

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

    def reread(self, connection: Connection, keys: Sequence[str]) -> list[RedisOp]:
        start = len(STATS_KEY_PREFIX)
        ids = [key[start:].split(":", 1) for key in keys if key.startswith(STATS_KEY_PREFIX)]
        if not ids:
            return []
        with connection.cursor() as cursor:
            cursor.execute(REREAD, ([g for g, _ in ids], [p for _, p in ids]))
            found: list[RedisOp] = [redis_hash(row) for row in cursor.fetchall()]
        connection.commit()
        return found

    def maintain(self, connection: Connection, now: datetime) -> None:
        return
