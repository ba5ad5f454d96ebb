"""leaderboard: boards total_score, high_score, level, wins over periods all_time, daily and
weekly (event time, UTC, ISO weeks) in `leaderboards`, mirrored to Redis sorted sets
(db 1 by default): `leaderboard:{game_id}:{board}:all_time`,
`leaderboard:{game_id}:{board}:daily:{YYYY-MM-DD}` and
`leaderboard:{game_id}:{board}:weekly:{YYYY-Www}`.

Redis keeps each board's top N and expires daily/weekly boards when their keep time is over;
PostgreSQL keeps every player's scores and deletes expired daily/weekly rows in maintenance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, cast

from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name
from psycopg2.extensions import cursor as Cursor  # noqa: N812

from eventfleet.consumer.aggregate import (
    BOARD_BITS,
    BOARD_INDEX,
    Keep,
    LeaderboardSlot,
    aggregate_leaderboard,
    expires_at,
    oldest_kept,
)
from eventfleet.consumer.batch import Good
from eventfleet.consumer.mirror.ops import BoardFloors, RedisOp, ZScore
from eventfleet.consumer.modes.base import RedisValues, Staging, no_redis_values
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.contract.names import BOARD_KEY_PREFIX, Mode, Period, board_key, parse_board_key

COLUMNS: Final = (
    "game_id, period, period_key, player_id, total_score, high_score, level, wins, boards"
)
# Ordered so that replicas sharing players lock their rows in the same order (no deadlock), in
# the primary key's order (player first: see migration 0004).
UPSERT: Final = f"""
INSERT INTO leaderboards AS l ({COLUMNS})
SELECT {COLUMNS} FROM leaderboard_staging
ORDER BY player_id, game_id, period, period_key
ON CONFLICT (player_id, game_id, period, period_key) DO UPDATE SET
    total_score = l.total_score + EXCLUDED.total_score,
    high_score = GREATEST(l.high_score, EXCLUDED.high_score),
    level = GREATEST(l.level, EXCLUDED.level),
    wins = l.wins + EXCLUDED.wins,
    boards = l.boards | EXCLUDED.boards,
    updated_at = now()
RETURNING game_id, period, period_key, player_id, total_score, high_score, level, wins
"""  # noqa: S608 - constants
STAGING: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS leaderboard_staging "
    "(LIKE leaderboards INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)


def _top_n(rows: str, condition: str) -> str:
    """A query of the top N (its last parameter) of boards: every player's score on every board
    it is on (the bits of aggregate.BOARD_BITS) among `rows` (leaderboards as l, FROM on), kept
    where `condition` holds and ranked within its board."""
    return f"""
SELECT game_id, period, period_key, board, player_id, score FROM (
    SELECT l.game_id, l.period, l.period_key, b.board, l.player_id, b.score,
           row_number() OVER (
               PARTITION BY l.game_id, l.period, l.period_key, b.board
               ORDER BY b.score DESC, l.player_id
           ) AS rank
    {rows}
    CROSS JOIN LATERAL (VALUES
        ('total_score', l.total_score, 1), ('high_score', l.high_score, 2),
        ('level', l.level::bigint, 4), ('wins', l.wins, 8)
    ) AS b(board, score, bit)
    WHERE {condition}
) ranked WHERE rank <= %s
"""  # noqa: S608 - built from the constants below


# The top N of every board of every live period, ranked in one scan.
TOP: Final = _top_n("FROM leaderboards l", "l.boards & b.bit <> 0 AND b.board = ANY(%s)")
# The top N of some boards (an evicted board, one built for a smaller N): what a rebuild of
# only those boards reads. {values} is filled in with a placeholder row per board.
TOP_OF: Final = _top_n(
    """FROM (VALUES {values}) AS w (game_id, period, period_key, board)
    JOIN leaderboards l
      ON l.game_id = w.game_id AND l.period = w.period AND l.period_key = w.period_key""",
    "b.board = w.board AND l.boards & b.bit <> 0",
)


class LeaderboardStaged(NamedTuple):
    deltas: dict[LeaderboardSlot, list[int]]
    lines: list[str]  # COPY text, one line per slot


class LeaderboardMode:
    name: Mode = "leaderboard"
    redis_prefix: str | None = BOARD_KEY_PREFIX
    counted_events_table: str | None = "leaderboard_counted_events"
    # Only these move a board: other events need no id kept.
    counted_types: frozenset[str] | None = frozenset(("match_completed", "player_level_up"))

    def __init__(self, settings: ConsumerSettings) -> None:
        self.boards = settings.boards
        self.periods = settings.periods
        self.top_n = settings.top_n
        self.keep = Keep(settings.daily_keep_days, settings.weekly_keep_weeks)
        self._staging = Staging(STAGING, "leaderboard_staging")
        self._expiry: dict[tuple[str, str], datetime | None] = {}
        self._bits = [(board, BOARD_BITS[board], BOARD_INDEX[board]) for board in self.boards]
        self._boards: dict[tuple[str, str, str], tuple[datetime | None, list[tuple[int, int, str]]]]
        self._boards = {}

    def _expires(self, period: str, period_key: str) -> datetime | None:
        found = self._expiry.get((period, period_key), False)
        if found is False:
            found = self._expiry[(period, period_key)] = expires_at(
                cast(Period, period), period_key, self.keep
            )
        return cast(datetime | None, found)

    def prepare(self, connection: Connection, events: Sequence[Good], now: datetime) -> None:
        self._staging.ensure(connection)

    def stage(self, events: Sequence[Good], now: datetime) -> LeaderboardStaged:
        deltas = aggregate_leaderboard(
            (g.event for g in events), self.boards, self.periods, now=now, keep=self.keep
        )
        # COPY text: identifiers and period keys hold no tab, newline or backslash.
        lines = [
            f"{game_id}\t{period}\t{period_key}\t{player_id}\t{d[0]}\t{d[1]}\t{d[2]}\t{d[3]}\t{d[4]}\n"
            for (game_id, period, period_key, player_id), d in deltas.items()
        ]
        return LeaderboardStaged(deltas, lines)

    def write(
        self, cursor: Cursor, events: Sequence[Good], now: datetime, staged: object = None
    ) -> RedisValues:
        rows = staged if isinstance(staged, LeaderboardStaged) else self.stage(events, now)
        if not rows.lines:
            return no_redis_values
        self._staging.load(cursor, COLUMNS, rows.lines)
        cursor.execute(UPSERT)
        returned = cursor.fetchall()
        return lambda floors: self._ops(returned, rows.deltas, floors)

    def _ops(
        self,
        returned: Sequence[Sequence[Any]],
        deltas: dict[LeaderboardSlot, list[int]],
        floors: BoardFloors,
    ) -> list[RedisOp]:
        """The new absolute scores of the boards this batch touched, but those below their
        board's floor (most of them, once boards are full)."""
        ops: list[RedisOp] = []
        top_n = self.top_n
        boards = self._boards
        for row in returned:
            game_id, period, period_key, player_id = row[0], row[1], row[2], row[3]
            touched = deltas[(game_id, period, period_key, player_id)][4]
            found = boards.get((game_id, period, period_key))
            if found is None:
                found = self._board_keys(game_id, period, period_key)
            expire, keys = found
            for bit, index, key in keys:
                if touched & bit:
                    score = row[4 + index]
                    if score >= floors.get(key, score):
                        ops.append(ZScore(key, player_id, score, top_n, expire))
        return ops

    def _board_keys(
        self, game_id: str, period: str, period_key: str
    ) -> tuple[datetime | None, list[tuple[int, int, str]]]:
        """The expiry and (bit, column index, Redis key) of each board of one game and period,
        remembered: every batch names the same few."""
        if len(self._boards) > 10_000:
            self._boards.clear()
        found = self._boards[(game_id, period, period_key)] = (
            self._expires(period, period_key),
            [
                (bit, index, board_key(game_id, board, period, period_key))
                for board, bit, index in self._bits
            ],
        )
        return found

    def snapshot(self, connection: Connection, now: datetime) -> Iterator[list[RedisOp]]:
        with connection.cursor(name="leaderboard_snapshot") as cursor:
            cursor.itersize = 5000
            cursor.execute(TOP, (list(self.boards), self.top_n))
            while True:
                rows = cursor.fetchmany(5000)
                if not rows:
                    break
                ops: list[RedisOp] = []
                for game_id, period, period_key, board, player_id, score in rows:
                    expire = self._expires(period, period_key)
                    if expire is None or expire > now:
                        key = board_key(game_id, board, period, period_key)
                        ops.append(ZScore(key, player_id, int(score), self.top_n, expire))
                yield ops
        connection.commit()

    def reread(self, connection: Connection, keys: Sequence[str]) -> list[RedisOp]:
        """The whole top N of these boards (their Redis copy was evicted, or built for a
        smaller N); a key that names no configured board is left out."""
        wanted = []
        for key in keys:
            found = parse_board_key(key)
            if found is not None and found[1] in self.boards:
                wanted.append(found)
        if not wanted:
            return []
        now = datetime.now(UTC)
        ops: list[RedisOp] = []
        with connection.cursor() as cursor:
            cursor.execute(
                TOP_OF.format(values=",".join(["(%s, %s, %s, %s)"] * len(wanted))),
                [
                    *(v for game, board, period, key in wanted for v in (game, period, key, board)),
                    self.top_n,
                ],
            )
            for game_id, period, period_key, board, player_id, score in cursor.fetchall():
                expire = self._expires(period, period_key)
                if expire is None or expire > now:
                    key = board_key(game_id, board, period, period_key)
                    ops.append(ZScore(key, player_id, int(score), self.top_n, expire))
        connection.commit()
        return ops

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
