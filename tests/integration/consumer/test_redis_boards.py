"""Board floors on real Redis: members that cannot enter a full board's top N are not sent, and
the board still holds exactly its top N."""

from __future__ import annotations

import redis

from eventfleet.consumer.mirror.ops import ZScore
from eventfleet.consumer.mirror.resp import _WRITE_BOARD
from eventfleet.consumer.mirror.sync import RedisMirror

KEY = "leaderboard:g:total_score:all_time"


def test_members_below_a_full_boards_floor_are_not_sent_and_the_top_n_stays_exact(
    redis_url: str,
) -> None:
    db = int(redis_url.rsplit("/", 1)[1])
    mirror = RedisMirror(redis_url, db, "leaderboard:floor-test", boards=True)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.delete(KEY, mirror.marker, mirror.book.registry)
    client.hset(mirror.marker, "synced_at", 1)  # a complete copy, as far as the mirror knows
    mirror.dirty = False
    sent: list[str] = []
    send = mirror._send

    def recording(packed: list[str]) -> list[object]:
        sent.extend(packed)
        return send(packed)

    mirror._send = recording  # type: ignore[method-assign]  # a spy on what goes to Redis

    def publish(scores: dict[str, int]) -> None:
        sent.clear()
        ops = [ZScore(KEY, player, score, 3) for player, score in scores.items()]
        mirror.publish(list(ops), {}, snapshot=lambda: iter(()), stored=dict)

    try:
        publish({"p1": 10, "p2": 20})
        assert mirror.floors == {}  # room left on the board: no floor yet
        publish({"p3": 30, "p4": 40})
        assert mirror.floors == {KEY: 20}  # full (p4, p3, p2): the lowest kept score

        publish({"p5": 5, "p6": 20, "p1": 25})
        [zadd] = [command for command in sent if _WRITE_BOARD in command]
        assert "\r\np5\r\n" not in zadd  # below the floor: not sent
        assert "\r\np6\r\n" in zadd  # level with the floor
        assert "\r\np1\r\n" in zadd  # above it
        assert client.zrevrange(KEY, 0, -1, withscores=True) == [
            ("p4", 40.0),
            ("p3", 30.0),
            ("p1", 25.0),
        ]
        assert mirror.floors == {KEY: 25}

        publish({"p2": 24})  # everything below the floor: nothing for the board at all
        assert not [command for command in sent if KEY in command]
        assert client.zcard(KEY) == 3
    finally:
        client.delete(KEY, mirror.marker, mirror.book.registry)
        mirror.close()
        client.close()
