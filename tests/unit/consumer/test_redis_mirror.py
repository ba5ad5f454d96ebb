"""The hand-packed Redis commands of a batch (pure: no Redis needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eventfleet.consumer.modes.base import HashSet, RedisOp, ZScore
from eventfleet.consumer.redis_mirror import _SET_HASHES, above_floors, commands, floor_of, pack


def test_pack_is_resp() -> None:
    assert pack("SET", "k", 12) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"


def test_hashes_with_the_same_fields_share_one_script_call_and_later_values_win() -> None:
    ops = [
        HashSet("player_stats:g:p1", ("a", "b"), ("1", "2")),
        HashSet("player_stats:g:p2", ("a", "b"), ("3", "4")),
        HashSet("player_stats:g:p1", ("a", "b"), ("5", "6")),
    ]
    [call] = commands(ops)
    # numkeys, the keys, the field count, the field names, then each key's values in order
    assert call == pack(
        "EVAL", _SET_HASHES, 2, "player_stats:g:p1", "player_stats:g:p2",
        2, "a", "b", "5", "6", "3", "4",
    )  # fmt: skip


def test_values_packed_by_postgresql_go_out_as_they_came() -> None:
    """stats rows arrive with their values packed as RESP bulk strings."""
    packed = "$1\r\n5\r\n$2\r\n16\r\n"
    ops: list[RedisOp] = [
        HashSet("player_stats:g:p1", ("a", "b"), (), packed),
        HashSet("player_stats:g:p2", ("a", "b"), ("3", "4")),
    ]
    assert commands(ops) == [
        pack("EVAL", _SET_HASHES, 2, "player_stats:g:p1", "player_stats:g:p2", 2, "a", "b",
             "5", "16", "3", "4")
    ]  # fmt: skip


def test_one_zadd_per_board_then_trim_and_expiry() -> None:
    expiry = datetime(2026, 12, 5, tzinfo=UTC)
    ops = [
        ZScore("leaderboard:g:wins:daily:2026-11-27", "p1", 3, 10, expiry),
        ZScore("leaderboard:g:wins:daily:2026-11-27", "p2", 5, 10, expiry),
        ZScore("leaderboard:g:wins:all_time", "p1", 9, 10),
    ]
    found = commands(ops)
    assert [c.split("\r\n")[2] for c in found] == [
        "ZADD", "ZREMRANGEBYRANK", "EXPIREAT", "ZADD", "ZREMRANGEBYRANK",
    ]  # fmt: skip
    assert found[0] == pack("ZADD", "leaderboard:g:wins:daily:2026-11-27", "GT", 3, "p1", 5, "p2")
    assert found[1] == pack("ZREMRANGEBYRANK", "leaderboard:g:wins:daily:2026-11-27", 0, -11)
    assert found[2] == pack(
        "EXPIREAT", "leaderboard:g:wins:daily:2026-11-27", int(expiry.timestamp())
    )


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
