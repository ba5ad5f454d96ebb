"""stats: per-player aggregates in `player_statistics`, mirrored to Redis hashes
`player_stats:{game_id}:{player_id}` (db 0 by default).

Each batch is aggregated in memory (one delta per player) and upserted in one statement; the
upsert returns the rows' new absolute values, which are what Redis gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from eventfleet.consumer.aggregate import aggregate_stats, stats_redis_key
from eventfleet.consumer.batch import Good
from eventfleet.consumer.modes.base import HashSet, RedisOp
from eventfleet.consumer.settings import ConsumerSettings, Mode
from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name
from psycopg2.extensions import cursor as Cursor  # noqa: N812
from psycopg2.extras import execute_values

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
RETURNED: Final = (*COLUMNS, "version")
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
UPSERT: Final = f"""
INSERT INTO player_statistics AS s ({", ".join(COLUMNS)}) VALUES %s
ON CONFLICT (game_id, player_id) DO UPDATE SET
    {_SET}
RETURNING {", ".join(RETURNED)}
"""  # noqa: S608 - built from constants
_TEMPLATE: Final = (
    "(" + ", ".join("%s::jsonb" if c == "other_events" else "%s" for c in COLUMNS) + ")"
)


def redis_hash(row: Sequence[Any]) -> HashSet:
    """A player_statistics row (in RETURNED order) as its Redis hash."""
    values = dict(zip(RETURNED, row, strict=True))
    mapping: dict[str, str] = {}
    for name, value in values.items():
        if name in ("game_id", "player_id"):
            continue
        if isinstance(value, datetime):
            mapping[name] = value.isoformat()
        elif isinstance(value, dict):
            mapping[name] = json.dumps(value, sort_keys=True, separators=(",", ":"))
        else:
            mapping[name] = str(value)
    return HashSet(stats_redis_key(values["game_id"], values["player_id"]), mapping)


class StatsMode:
    name: Mode = "stats"
    redis_prefix: str | None = "player_stats:"

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings

    def prepare(self, connection: Connection, events: Sequence[Good], now: datetime) -> None:
        return

    def write(self, cursor: Cursor, events: Sequence[Good], now: datetime) -> list[RedisOp]:
        deltas = aggregate_stats(g.event for g in events)
        if not deltas:
            return []
        rows = [
            (
                game_id,
                player_id,
                d.total_events,
                d.logins,
                d.logouts,
                d.level_ups,
                d.matches_played,
                d.achievements,
                d.purchases,
                d.wins,
                d.total_score,
                d.kills,
                d.deaths,
                d.total_spent,
                json.dumps(d.other_events),
                d.high_score,
                d.max_level,
                d.first_seen,
                d.last_seen,
            )
            for (game_id, player_id), d in deltas.items()
        ]
        returned = execute_values(
            cursor, UPSERT, rows, template=_TEMPLATE, page_size=len(rows), fetch=True
        )
        return [redis_hash(row) for row in returned]

    def snapshot(self, connection: Connection, now: datetime) -> Iterator[list[RedisOp]]:
        with connection.cursor(name="stats_snapshot") as cursor:
            cursor.itersize = 5000
            cursor.execute(f"SELECT {', '.join(RETURNED)} FROM player_statistics")  # noqa: S608 - constants
            while True:
                rows = cursor.fetchmany(5000)
                if not rows:
                    break
                yield [redis_hash(row) for row in rows]
        connection.commit()

    def maintain(self, connection: Connection, now: datetime) -> None:
        return
