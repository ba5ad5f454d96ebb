"""The hand-packed Redis commands of a batch (pure: no Redis needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from eventfleet.consumer.mirror.ops import HashSet, RedisOp, ZScore
from eventfleet.consumer.mirror.resp import (
    _SET_HASHES,
    _WRITE_BOARD,
    BoardBook,
    board_commands,
    commands,
    pack,
)

BOOK = BoardBook("eventfleet:boards:leaderboard:sink", "eventfleet:stale:leaderboard:sink")


def test_pack_is_resp() -> None:
    assert pack("SET", "k", 12) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"


def test_hashes_with_the_same_fields_share_one_script_call_and_later_values_win() -> None:
    ops = [
        HashSet("player_stats:g:p1", ("a", "b"), ("1", "2")),
        HashSet("player_stats:g:p2", ("a", "b"), ("3", "4")),
        HashSet("player_stats:g:p1", ("a", "b"), ("5", "6")),
    ]
    [call] = commands(ops, BOOK)
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
    assert commands(ops, BOOK) == [
        pack("EVAL", _SET_HASHES, 2, "player_stats:g:p1", "player_stats:g:p2", 2, "a", "b",
             "5", "16", "3", "4")
    ]  # fmt: skip


def test_one_script_call_per_board_with_its_top_n_expiry_and_members() -> None:
    expiry = datetime(2026, 12, 5, tzinfo=UTC)
    daily = "leaderboard:g:wins:daily:2026-11-27"
    ops = [
        ZScore(daily, "p1", 3, 10, expiry),
        ZScore(daily, "p2", 5, 10, expiry),
        ZScore("leaderboard:g:wins:all_time", "p1", 9, 10),
        ZScore(daily, "p1", 4, 10, expiry),  # later values of a member win
    ]
    found, boards = board_commands(ops, BOOK)
    assert boards == {daily: 10, "leaderboard:g:wins:all_time": 10}
    assert found == [
        pack("EVAL", _WRITE_BOARD, 3, daily, *BOOK, 10, int(expiry.timestamp()), 0,
             4, "p1", 5, "p2"),
        pack("EVAL", _WRITE_BOARD, 3, "leaderboard:g:wins:all_time", *BOOK, 10, 0, 0, 9, "p1"),
    ]  # fmt: skip
    # A rebuild's or a repair's write is the board's whole top N: it says so.
    [complete], _ = board_commands(ops[2:3], BOOK, complete=True)
    assert complete == pack(
        "EVAL", _WRITE_BOARD, 3, "leaderboard:g:wins:all_time", *BOOK, 10, 0, 1, 9, "p1"
    )
    assert commands(ops, BOOK) == found
