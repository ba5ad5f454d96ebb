"""Rebuilds of Redis that readers do not notice, on real Redis: a reader polling a board during a
full rebuild never finds it empty; a second replica that would rebuild at the same time waits
and deletes nothing; an evicted board, and boards built for a smaller top N, are rebuilt alone
from PostgreSQL, without a full rebuild."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from eventfleet.consumer.mirror.ops import HashSet, RedisOp, ZScore
from eventfleet.consumer.mirror.sync import RedisMirror
from tests.fixtures.consumer_bench import ConsumerBench
from tests.integration.consumer.expected import stored_boards
from tests.integration.consumer.helpers import counter, event_now, generate_events, run_until_done

pytestmark = pytest.mark.integration
BOARD = "leaderboard:g:total_score:all_time"
TP = ("t", 0)


def mirror(redis_url: str, heartbeat: Callable[[], None] = lambda: None) -> RedisMirror:
    db = int(redis_url.rsplit("/", 1)[1])
    return RedisMirror(redis_url, db, "leaderboard:rebuild-test", boards=True, heartbeat=heartbeat)


def slowly(
    chunks: list[list[RedisOp]], pause: float, started: threading.Event
) -> Iterator[list[RedisOp]]:
    """A snapshot read from a large table: chunks with time between them."""
    for n, chunk in enumerate(chunks):
        if n == 1:
            started.set()  # the rebuild is under way: its first chunk is written
        time.sleep(pause)
        yield chunk


def board(client: redis.Redis, key: str = BOARD) -> list[tuple[str, int]]:
    return [(str(e[0]), int(e[1])) for e in client.zrevrange(key, 0, -1, withscores=True)]


def test_a_reader_polling_a_board_during_a_rebuild_never_sees_it_empty(redis_url: str) -> None:
    writer = mirror(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.zadd(BOARD, {"p1": 100, "p2": 50})  # what readers see before the rebuild
    chunks: list[list[RedisOp]] = [
        [ZScore(f"leaderboard:g:wins:daily:2026-12-0{n}", "p1", n, 10) for n in range(1, 4)],
        [ZScore(BOARD, "p3", 80, 10)],
        [ZScore(BOARD, "p1", 120, 10), ZScore(BOARD, "p2", 60, 10)],
        [HashSet(f"player_stats:g:p{n}", ("version", "wins"), ("1", str(n))) for n in range(3)],
    ]
    sizes: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            sizes.append(int(client.zcard(BOARD)))
            time.sleep(0.01)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        rebuilt = writer.resync(slowly(chunks, 0.2, threading.Event()), {TP: 7})
    finally:
        done.set()
        reader.join()
    assert len(sizes) > 20  # the reader polled all along the rebuild
    assert min(sizes) >= 2, "the board went missing during the rebuild"
    assert rebuilt
    assert board(client) == [("p1", 120), ("p3", 80), ("p2", 60)]
    assert client.hget(writer.marker, "t/0") == "7"
    writer.close()
    client.close()


def test_two_replicas_rebuilding_at_once_do_not_delete_each_others_work(redis_url: str) -> None:
    beats: list[float] = []
    first = mirror(redis_url, heartbeat=lambda: beats.append(time.monotonic()))
    second = mirror(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    chunks: list[list[RedisOp]] = [
        [ZScore(f"leaderboard:g:wins:daily:2026-12-0{n}", f"p{n}", n, 10)] for n in range(1, 8)
    ]
    started = threading.Event()
    rebuilt: list[bool] = []
    rebuilding = threading.Thread(
        target=lambda: rebuilt.append(first.resync(slowly(chunks, 0.15, started), {TP: 5}))
    )
    rebuilding.start()
    try:
        assert started.wait(10)
        assert client.pttl(first.lock.key) > 0  # the lock is held, with a TTL
        # The second replica finds Redis incomplete too, and would rebuild: it must not.
        own: list[list[RedisOp]] = [[ZScore(BOARD, "x", 1, 10)]]
        assert not second.resync(iter(own), {TP: 1})
        assert client.exists("leaderboard:g:wins:daily:2026-12-01")  # nothing was deleted
        # Its batches go on meanwhile: values written, the marker left to the rebuild.
        second.publish(
            [ZScore(BOARD, "p9", 900, 10)],
            {TP: 99},
            snapshot=lambda: iter(()),
            stored=lambda: {TP: 99},
        )
        assert second.dirty
        assert board(client) == [("p9", 900)]
    finally:
        rebuilding.join(30)
    assert rebuilt == [True]
    assert second.resyncs == 0
    for n in range(1, 8):
        assert board(client, f"leaderboard:g:wins:daily:2026-12-0{n}") == [(f"p{n}", n)]
    assert board(client) == [("p9", 900)]  # the second replica's batch survived the rebuild
    assert len(beats) >= len(chunks)  # a heartbeat per chunk
    assert not client.exists(first.lock.key)  # released
    assert client.hget(first.marker, "t/0") == "5"
    for replica in (first, second):
        replica.close()
    client.close()


def top(dsn: str, game: str, name: str, n: int) -> list[tuple[str, int]]:
    """A board's top n in PostgreSQL, as Redis orders it."""
    scores = [
        (player, score)
        for (g, b, period, _key, player), score in stored_boards(dsn).items()
        if (g, b, period) == (game, name, "all_time")
    ]
    return sorted(scores, key=lambda entry: (-entry[1], entry[0]))[:n]


def match(player: str, n: int) -> dict[str, object]:
    return event_now("match_completed", player, game="game1", number=n, score=7, won=True)


def test_an_evicted_board_is_rebuilt_alone_from_postgres(bench: ConsumerBench) -> None:
    events = generate_events(600, seed=11, players=30, games=1)
    topic = bench.topic_with(events, partitions=1)
    run_until_done(bench.consumer("leaderboard", topic), len(events))
    key = "leaderboard:game1:total_score:all_time"
    assert len(board(bench.redis, key)) == 30
    bench.redis.delete(key)  # evicted (volatile-* takes daily and weekly boards first)
    bench.produce(topic, [match("p1", 10_001)])
    again = bench.consumer("leaderboard", topic)
    run_until_done(again, len(events) + 1)
    assert bench.processed() == len(events) + 1
    assert board(bench.redis, key) == top(bench.dsn, "game1", "total_score", 1000)
    assert counter(again.metrics.redis_resyncs) == 0  # that board alone, no full rebuild
    assert counter(again.metrics.redis_rewrites) >= 1


def test_a_raised_top_n_repairs_each_board_it_writes_to(bench: ConsumerBench) -> None:
    events = generate_events(600, seed=12, players=30, games=1)
    topic = bench.topic_with(events, partitions=1)
    run_until_done(bench.consumer("leaderboard", topic, top_n=3), len(events))
    key = "leaderboard:game1:total_score:all_time"
    assert board(bench.redis, key) == top(bench.dsn, "game1", "total_score", 3)
    bench.produce(topic, [match("p1", 10_002)])
    raised = bench.consumer("leaderboard", topic, top_n=10)
    run_until_done(raised, len(events) + 1)
    assert board(bench.redis, key) == top(bench.dsn, "game1", "total_score", 10)
    assert counter(raised.metrics.redis_resyncs) == 0
