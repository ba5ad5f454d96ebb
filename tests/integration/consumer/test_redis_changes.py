"""Stats hashes get only the values an upsert changed (a HashChange), and only when Redis holds
the version just before; a hash that missed a change is rewritten whole from PostgreSQL. Real
PostgreSQL and Redis, the mode's own SQL and the mirror's own script."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg2
import pytest
import redis

from eventfleet.consumer import migrate
from eventfleet.consumer.batch import Record, parse_records
from eventfleet.consumer.mirror.ops import HashChange, HashSet, RedisOp
from eventfleet.consumer.mirror.resp import change_commands
from eventfleet.consumer.mirror.sync import RedisMirror
from eventfleet.consumer.modes.stats import REDIS_FIELDS, StatsMode
from eventfleet.contract.events import DEFAULT_LIMITS
from tests.fixtures.consumer_bench import ConsumerBench, in_both_stores
from tests.integration.consumer.expected import expected_stats
from tests.integration.consumer.helpers import counter, generate_events, running

pytestmark = pytest.mark.integration

KEY = "player_stats:g:p1"
NOW = datetime.now(UTC).replace(microsecond=0)


def resp(*texts: str) -> str:
    return "".join(f"${len(text)}\r\n{text}\r\n" for text in texts)


def change(version: int, **values: int) -> HashChange:
    pairs = [("version", str(version)), *((name, str(value)) for name, value in values.items())]
    return HashChange(KEY, len(pairs), resp(*(text for pair in pairs for text in pair)))


def pairs_of(packed: str) -> list[tuple[str, str]]:
    """The (field, value) pairs of a HashChange's packed RESP (no value holds CRLF)."""
    texts = packed.split("\r\n")[1::2]
    return list(zip(texts[0::2], texts[1::2], strict=True))


def nothing() -> Iterator[list[RedisOp]]:
    return iter(())


def mirror(redis_url: str) -> RedisMirror:
    db = int(redis_url.rsplit("/", 1)[1])
    return RedisMirror(redis_url, db, "stats:change-test")


def test_a_change_lands_only_on_the_version_just_before_it(redis_url: str) -> None:
    writer = mirror(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def send(*changes: HashChange) -> list[Any]:
        return writer._send(change_commands(changes, writer.stale_set))

    assert send(change(1, wins=1, logins=7)) == [[]]  # no hash yet, version 1: a new row
    assert send(change(2, wins=2)) == [[]]
    assert client.hgetall(KEY) == {"version": "2", "wins": "2", "logins": "7"}  # logins kept

    assert send(change(2, wins=5)) == [[]]  # already there (a replay): left alone
    assert send(change(4, wins=9)) == [
        [KEY.encode()]
    ]  # Redis missed version 3: not patched, reported
    assert client.hgetall(KEY) == {"version": "2", "wins": "2", "logins": "7"}
    assert client.smembers(writer.stale_set) == {KEY}  # recorded in the same step

    client.delete(KEY)  # evicted, say
    assert send(change(5, wins=9)) == [
        [KEY.encode()]
    ]  # no hash and not a new row: missed everything
    assert not client.exists(KEY)
    writer.close()
    client.close()


def test_a_hash_that_missed_a_change_is_rewritten_whole_from_postgresql(redis_url: str) -> None:
    writer = mirror(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    writer._send(change_commands([change(1, wins=1, logins=7)], writer.stale_set))
    asked: list[list[str]] = []

    def reread(keys: list[str]) -> list[RedisOp]:
        asked.append(keys)
        return [HashSet(KEY, ("version", "wins", "logins"), ("3", "4", "8"))]

    writer.dirty = False
    writer.client.hset(writer.marker, "t/0", 0)
    writer.publish(
        [change(3, wins=4)], {("t", 0): 10}, snapshot=nothing, stored=dict, reread=reread
    )
    assert asked == [[KEY]]
    assert client.hgetall(KEY) == {"version": "3", "wins": "4", "logins": "8"}
    assert not client.exists(writer.stale_set)
    assert writer.rewritten == 1
    assert writer.resyncs == 0  # one hash rewritten, not everything
    writer.close()
    client.close()


def test_a_rewrite_that_could_not_read_postgresql_makes_the_next_check_rebuild(
    redis_url: str,
) -> None:
    """The stale set outlives the failed rewrite (or a crash): the marker alone says Redis is in
    step, but the hash is not."""
    writer = mirror(redis_url)
    writer._send(change_commands([change(1, wins=1)], writer.stale_set))

    def unreachable(keys: list[str]) -> list[RedisOp]:  # noqa: ARG001 - a reread
        raise psycopg2.OperationalError("server closed the connection")

    writer.dirty = False
    writer.client.hset(writer.marker, "t/0", 0)
    with pytest.raises(psycopg2.OperationalError):
        writer.publish(
            [change(3, wins=4)], {("t", 0): 10}, snapshot=nothing, stored=dict, reread=unreachable
        )
    assert writer.client.hget(writer.marker, "t/0") == b"10"  # the marker is in step
    assert writer._behind({("t", 0): 10})  # yet the mirror is not trusted
    writer.close()


def write_events(dsn: str, mode: StatsMode, events: list[dict[str, Any]]) -> list[HashChange]:
    records = [Record("t", 0, n, orjson.dumps(e)) for n, e in enumerate(events)]
    good, bad = parse_records(records, now=NOW + timedelta(minutes=1), limits=DEFAULT_LIMITS)
    assert not bad
    connection = psycopg2.connect(dsn)
    try:
        mode.prepare(connection, good, NOW)
        with connection.cursor() as cursor:
            values = mode.write(cursor, good, NOW)
        connection.commit()
    finally:
        connection.close()
    found = values({})
    assert all(isinstance(op, HashChange) for op in found)
    return [op for op in found if isinstance(op, HashChange)]


def event(kind: str, minutes: int, **data: Any) -> dict[str, Any]:
    return {
        "event_type": kind,
        "player_id": "p1",
        "game_id": "g",
        "timestamp": (NOW - timedelta(minutes=minutes)).isoformat(),
        "data": data,
    }


def test_stats_sends_only_the_values_an_event_changed(bench: ConsumerBench) -> None:
    migrate.apply(bench.dsn, "stats")
    mode = StatsMode(bench.settings("stats", "unused"))

    def sent(*events: dict[str, Any]) -> list[str]:
        [op] = write_events(bench.dsn, mode, list(events))
        names = [name for name, _ in pairs_of(op.packed)]
        assert op.pairs == len(names)
        assert names[0] == "version"
        return names

    first = sent(event("match_completed", 30, score=50, won=True, kills=3, deaths=1))
    assert sorted(first) == sorted(REDIS_FIELDS)  # a new row: everything
    assert sent(event("player_login", 20, platform="pc")) == [
        "version",
        "total_events",
        "logins",
        "last_seen",
    ]
    # Lower than the high score, no kills or deaths, earlier than every event so far: the
    # maximum and last_seen stay, first_seen moves.
    assert sent(event("match_completed", 40, score=10, won=False)) == [
        "version",
        "total_events",
        "matches_played",
        "total_score",
        "first_seen",
    ]
    assert sent(event("guild_joined", 10, guild="g1")) == [
        "version",
        "total_events",
        "other_events",
        "last_seen",
    ]


def test_an_evicted_stats_hash_is_rewritten_on_the_players_next_event(bench: ConsumerBench) -> None:
    first = generate_events(600, seed=21, players=10)
    topic = bench.topic_with(first, partitions=2)
    consumer = bench.consumer("stats", topic, batch_size=100)
    with running(consumer):
        bench.wait_processed(len(first), timeout=90, what="the first events")
        evicted = sorted(bench.redis.scan_iter(match="player_stats:*"))[:3]
        bench.redis.delete(*evicted)
        second = generate_events(300, seed=22, players=10)
        bench.produce(topic, second)
        bench.wait_processed(len(first) + len(second), timeout=90, what="the second events")
    assert bench.stats() == in_both_stores(expected_stats(first + second))
    assert counter(consumer.metrics.redis_rewrites) >= len(evicted)
    assert counter(consumer.metrics.redis_resyncs) == 1  # the first start only
    assert not bench.redis.exists(consumer.redis.stale_set if consumer.redis else "")
