"""The hand-packed Redis commands of a batch (pure: no Redis needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from eventfleet.consumer.mirror.ops import HashSet, RedisOp, ZScore
from eventfleet.consumer.mirror.resp import _SET_HASHES, commands, pack


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
