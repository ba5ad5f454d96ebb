"""leaderboard: boards total_score, high_score, level, wins over periods all_time, daily and
weekly (event time, UTC, ISO weeks) in `leaderboards`, mirrored to Redis sorted sets
(db 1 by default): `leaderboard:{game_id}:{board}:all_time`,
`leaderboard:{game_id}:{board}:daily:{YYYY-MM-DD}` and
`leaderboard:{game_id}:{board}:weekly:{YYYY-Www}`.

Redis keeps each board's top N and expires daily/weekly boards when their keep time is over;
PostgreSQL keeps every player's score and deletes expired daily/weekly rows in maintenance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final, cast

from eventfleet.consumer.aggregate import (
    BoardKey,
    Keep,
    aggregate_leaderboard,
    expires_at,
    oldest_kept,
)
from eventfleet.consumer.batch import Good
from eventfleet.consumer.modes.base import RedisOp, ZScore
from eventfleet.consumer.settings import Board, ConsumerSettings, Mode, Period
from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name
from psycopg2.extensions import cursor as Cursor  # noqa: N812
from psycopg2.extras import execute_values

UPSERT: Final = """
INSERT INTO leaderboards AS l (game_id, board, period, period_key, player_id, score) VALUES %s
ON CONFLICT (game_id, board, period, period_key, player_id) DO UPDATE SET
    score = CASE WHEN l.board IN ('total_score', 'wins') THEN l.score + EXCLUDED.score
                 ELSE GREATEST(l.score, EXCLUDED.score) END,
    updated_at = now()
RETURNING game_id, board, period, period_key, player_id, score
"""
TOP: Final = """
SELECT game_id, board, period, period_key, player_id, score FROM (
    SELECT *, row_number() OVER (
        PARTITION BY game_id, board, period, period_key ORDER BY score DESC, player_id
    ) AS rank
    FROM leaderboards
) ranked WHERE rank <= %s
"""


class LeaderboardMode:
    name: Mode = "leaderboard"
    redis_prefix: str | None = "leaderboard:"

    def __init__(self, settings: ConsumerSettings) -> None:
        self.boards = settings.boards
        self.periods = settings.periods
        self.top_n = settings.top_n
        self.keep = Keep(settings.daily_keep_days, settings.weekly_keep_weeks)

    def _op(self, row: Sequence[Any]) -> ZScore:
        game_id, board, period, period_key, player_id, score = row
        key = BoardKey(game_id, cast(Board, board), cast(Period, period), period_key)
        return ZScore(
            key.redis_key,
            player_id,
            int(score),
            self.top_n,
            expires_at(key.period, period_key, self.keep),
        )

    def prepare(self, connection: Connection, events: Sequence[Good], now: datetime) -> None:
        return

    def write(self, cursor: Cursor, events: Sequence[Good], now: datetime) -> list[RedisOp]:
        scores = aggregate_leaderboard(
            (g.event for g in events), self.boards, self.periods, now=now, keep=self.keep
        )
        if not scores:
            return []
        rows = [
            (key.game_id, key.board, key.period, key.period_key, player_id, value)
            for (key, player_id), value in scores.items()
        ]
        returned = execute_values(cursor, UPSERT, rows, page_size=len(rows), fetch=True)
        return [self._op(row) for row in returned]

    def snapshot(self, connection: Connection, now: datetime) -> Iterator[list[RedisOp]]:
        with connection.cursor(name="leaderboard_snapshot") as cursor:
            cursor.itersize = 5000
            cursor.execute(TOP, (self.top_n,))
            while True:
                rows = cursor.fetchmany(5000)
                if not rows:
                    break
                ops: list[RedisOp] = []
                for row in rows:
                    op = self._op(row)
                    if op.expire_at is None or op.expire_at > now:
                        ops.append(op)
                yield ops
        connection.commit()

    def maintain(self, connection: Connection, now: datetime) -> None:
        """Delete expired daily and weekly boards (keys of one period sort by time)."""
        with connection.cursor() as cursor:
            for period in ("daily", "weekly"):
                oldest = oldest_kept(period, now, self.keep)
                cursor.execute(
                    "DELETE FROM leaderboards WHERE period = %s AND period_key < %s",
                    (period, oldest),
                )
        connection.commit()
