"""The Redis values a leaderboard write hands the mirror (pure: rows as the upsert returns them)."""

from __future__ import annotations

from datetime import UTC, datetime

from eventfleet.consumer.mirror.ops import ZScore
from eventfleet.consumer.modes.leaderboard import LeaderboardMode
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.contract.names import board_key

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def mode() -> LeaderboardMode:
    return LeaderboardMode(
        ConsumerSettings.model_validate(
            {
                "mode": "leaderboard",
                "kafka_bootstrap": "127.0.0.1:1",
                "topic": "t",
                "consumer_group": "g",
                "postgres_dsn": "postgresql://u@127.0.0.1/db",
                "redis_url": "redis://127.0.0.1:1",
                "top_n": 10,
            }
        )
    )


def test_only_touched_boards_at_or_above_their_floor_become_values() -> None:
    total = board_key("g", "total_score", "all_time", "all_time")
    wins = board_key("g", "wins", "all_time", "all_time")
    level = board_key("g", "level", "all_time", "all_time")
    # (game, period, period key, player) -> [total, high, level, wins, boards touched]
    deltas = {
        ("g", "all_time", "all_time", "p1"): [5, 5, 0, 1, 1 | 2 | 8],
        ("g", "all_time", "all_time", "p2"): [0, 0, 7, 0, 4],
    }
    # What the upsert returns: the keys, then total_score, high_score, level, wins.
    returned = [
        ("g", "all_time", "all_time", "p1", 100, 60, 3, 9),
        ("g", "all_time", "all_time", "p2", 40, 40, 7, 2),
    ]
    floors = {total: 100, wins: 10, level: 8}  # high_score's board is not full: no floor
    ops = mode()._ops(returned, deltas, floors)
    assert {(op.key, op.member, op.score) for op in ops if isinstance(op, ZScore)} == {
        (total, "p1", 100),  # level with the floor: still sent (ties are ordered by name)
        (board_key("g", "high_score", "all_time", "all_time"), "p1", 60),
    }  # p1's 9 wins are below 10; p2 touched only level, and 7 is below 8
    everything = mode()._ops(returned, deltas, {})
    assert len(everything) == 4  # without floors: every touched board of every row
