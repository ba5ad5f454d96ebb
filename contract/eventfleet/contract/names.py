"""Names that cross process boundaries. A second definition of any of these is a rename waiting
to break a reader, so every component imports them from here.

Redis keys are a contract with every reader of the read model (game servers, dashboards), not an
implementation detail of the consumers: a change here is a breaking change for them.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Mode = Literal["logger", "stats", "leaderboard"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)
Board = Literal["total_score", "high_score", "level", "wins"]
BOARDS: Final[tuple[Board, ...]] = get_args(Board)
Period = Literal["all_time", "daily", "weekly"]
PERIODS: Final[tuple[Period, ...]] = get_args(Period)
# The consumers' log levels: the EventConsumer's `logLevel`, passed to `eventfleet consumer`.
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

DEFAULT_TOPIC: Final = "player.events.raw"
# Kafka topic names: up to 249 of [a-zA-Z0-9._-] (Kafka also refuses "." and "..").
TOPIC_PATTERN: Final = r"^[A-Za-z0-9._-]{1,249}$"

STATS_KEY_PREFIX: Final = "player_stats:"
BOARD_KEY_PREFIX: Final = "leaderboard:"


def stats_key(game_id: str, player_id: str) -> str:
    """The Redis hash of one player's statistics in one game (db 0 by default)."""
    return f"{STATS_KEY_PREFIX}{game_id}:{player_id}"


def board_key(game_id: str, board: str, period: str, period_key: str) -> str:
    """The Redis sorted set of one board (db 1 by default). `period_key` is the UTC date
    (YYYY-MM-DD) of a daily board, the ISO week (YYYY-Www) of a weekly one, ignored for
    all_time."""
    if period == "all_time":
        return f"{BOARD_KEY_PREFIX}{game_id}:{board}:all_time"
    return f"{BOARD_KEY_PREFIX}{game_id}:{board}:{period}:{period_key}"


def parse_board_key(key: str) -> tuple[str, Board, Period, str] | None:
    """(game_id, board, period, period_key) of a board's Redis key, the inverse of board_key
    (period_key 'all_time' for all_time); None for any other text. Game ids hold no ':' (the
    event parser refuses it)."""
    if not key.startswith(BOARD_KEY_PREFIX):
        return None
    parts = key[len(BOARD_KEY_PREFIX) :].split(":")
    if len(parts) == 3 and parts[2] == "all_time":
        parts.append("all_time")
    if len(parts) != 4 or not parts[0] or not parts[3]:
        return None
    game_id, board, period, period_key = parts
    if (
        board not in BOARDS
        or period not in PERIODS
        or (period == "all_time") != (period_key == "all_time")
    ):
        return None
    return game_id, board, period, period_key
