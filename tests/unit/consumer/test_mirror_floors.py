"""Board floors: which members a full board would trim away at once (no Redis needed)."""

from __future__ import annotations

import pytest

from eventfleet.consumer.mirror.floors import above_floors, floor_of, learn_floors
from eventfleet.consumer.mirror.ops import HashSet, RedisOp, ZScore


def test_members_below_their_boards_floor_are_left_out() -> None:
    board, other = "leaderboard:g:wins:all_time", "leaderboard:g:level:all_time"
    stats = HashSet("player_stats:g:p1", ("a",), ("1",))
    ops: list[RedisOp] = [
        ZScore(board, "low", 4, 3),
        ZScore(board, "tie", 5, 3),  # level with the floor: ties are ordered by name, keep it
        ZScore(board, "high", 9, 3),
        ZScore(other, "any", 0, 3),  # no floor known: a board with room takes anyone
        stats,
    ]
    kept = above_floors(ops, {board: 5})
    assert kept == [ops[1], ops[2], ops[3], stats]
    assert above_floors(ops, {}) == ops


@pytest.mark.parametrize(
    ("top_n", "size", "lowest", "expected"),
    [
        (3, 3, [b"p9", b"20"], 20),  # full: its lowest kept score
        (3, 2, [b"p9", b"20"], None),  # room left: no floor
        (3, 0, [], None),  # empty (expired, flushed)
        (3, 3, [b"p9", b"1e+20"], 10**20),  # Redis writes big scores in exponent form
        (3, 3, [[b"p9", 20.0]], 20),  # the RESP3 form: pairs, scores as numbers
        (3, 1, [[b"p9", 20.0]], None),
    ],
)
def test_a_boards_floor_is_its_lowest_score_once_full(
    top_n: int, size: int, lowest: list[object], expected: int | None
) -> None:
    assert floor_of(top_n, size, lowest) == expected


def test_learning_keeps_the_floors_of_full_boards_and_forgets_boards_with_room() -> None:
    floors = {"full": 1, "emptied": 7, "untouched": 3}
    # Per written board, in order: ZCARD, then ZRANGE 0 0 WITHSCORES (after the trim).
    learn_floors(floors, {"full": 2, "emptied": 2}, [2, [b"p1", b"5"], 1, [b"p2", b"9"]])
    assert floors == {"full": 5, "untouched": 3}


def test_learning_forgets_every_floor_rather_than_pass_the_limit() -> None:
    floors = {f"board{i}": 1 for i in range(10_000)}
    learn_floors(floors, {"new": 1}, [1, [b"p1", b"4"]])
    assert floors == {"new": 4}
