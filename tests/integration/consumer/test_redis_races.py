"""Two writers racing on Redis (a resync that read PostgreSQL earlier, a batch with newer
values): whatever the order, the newer values stay. Real Redis, the mirror's own commands."""

from __future__ import annotations

import redis

from eventfleet.consumer.mirror.ops import HashSet, ZScore
from eventfleet.consumer.mirror.resp import commands
from eventfleet.consumer.mirror.sync import RedisMirror


def mirror(redis_url: str) -> RedisMirror:
    db = int(redis_url.rsplit("/", 1)[1])
    return RedisMirror(redis_url, db, "stats:race-test")


def stats(version: int, wins: int) -> HashSet:
    return HashSet("player_stats:g:p1", ("version", "wins"), (str(version), str(wins)))


def test_an_older_hash_snapshot_never_overwrites_a_newer_one(redis_url: str) -> None:
    writer = mirror(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    writer._send(commands([stats(version=5, wins=9)], writer.book))  # the newer batch lands first
    writer._send(
        commands([stats(version=3, wins=4)], writer.book)
    )  # then a resync's older snapshot
    assert client.hgetall("player_stats:g:p1") == {"version": "5", "wins": "9"}
    writer._send(commands([stats(version=6, wins=10)], writer.book))  # newer still: written
    assert client.hget("player_stats:g:p1", "wins") == "10"
    writer.close()
    client.close()


def test_an_older_board_score_never_lowers_a_newer_one(redis_url: str) -> None:
    writer = mirror(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = "leaderboard:g:total_score:all_time"
    writer._send(commands([ZScore(key, "p1", 500, 10), ZScore(key, "p2", 40, 10)], writer.book))
    writer._send(commands([ZScore(key, "p1", 300, 10), ZScore(key, "p3", 70, 10)], writer.book))
    assert client.zrevrange(key, 0, -1, withscores=True) == [
        ("p1", 500.0),
        ("p3", 70.0),
        ("p2", 40.0),
    ]
    writer.close()
    client.close()
