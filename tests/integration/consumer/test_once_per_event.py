"""Issue 13 on the real stack: no record stops a partition, no event counts twice, nothing is
skipped in silence (poison records, a bug in a mode, retried events, a renamed group, a
recreated topic)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from eventfleet.consumer.runtime import Consumer
from eventfleet.consumer.settings import ConsumerSettings
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.expected import (
    expected_boards,
    expected_stats,
    redis_boards,
    redis_stats,
    stored_boards,
    stored_stats,
)
from tests.integration.consumer.helpers import (
    counter,
    generate_events,
    processed_count,
    produce,
    produce_events,
    rows,
    running,
)

# A 1.3 KB match_completed whose data holds a list nested 600 deep: it crash-looped every
# consumer (RecursionError) before the contract bounded nesting.
POISON_DEEP = (
    b'{"event_type":"match_completed","player_id":"p1","game_id":"game1",'
    b'"timestamp":"2026-11-27T11:00:00Z","data":{"score":1,"won":true,"x":'
    + b"[" * 600
    + b"1"
    + b"]" * 600
    + b"}}"
)
POISON_DUPLICATE = (
    b'{"event_type":"purchase","event_type":"match_completed","player_id":"p1",'
    b'"game_id":"game1","timestamp":"2026-11-27T11:00:00Z","data":{"score":9,"won":true}}'
)


def with_ids(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event with an event_id, as the gateway sends them (a retry reuses it)."""
    return [e if "event_id" in e else {**e, "event_id": f"00000000-0000-4000-8000-{n:012d}"}
            for n, e in enumerate(events)]  # fmt: skip


def dlq_reasons(dsn: str) -> list[str]:
    return [r for (r,) in rows(dsn, "SELECT reason FROM dlq_events ORDER BY kafka_offset")]


def stored_event_count(dsn: str) -> int:
    return int(rows(dsn, "SELECT count(*) FROM events")[0][0])


@pytest.mark.parametrize("mode", ["logger", "stats", "leaderboard"])
def test_poison_records_go_to_the_dlq_and_the_partition_moves_on(  # noqa: PLR0917 - fixtures
    mode: str,
    stack: Stack,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=1)  # one partition: the poison sits between the others
    before, after = generate_events(300, seed=3), generate_events(300, seed=4)
    produce_events(stack.kafka_bootstrap, topic, before)
    produce(stack.kafka_bootstrap, topic, [POISON_DEEP, POISON_DUPLICATE])
    produce_events(stack.kafka_bootstrap, topic, after)
    consumer = Consumer(consumer_settings(mode, topic, batch_size=100))
    with running(consumer):
        wait_for(
            lambda: processed_count(postgres_dsn) >= 602,
            timeout=90,
            what="every record, the poison included",
        )
        assert consumer.health.ready
    assert dlq_reasons(postgres_dsn) == ["too_deep", "duplicate_key"]
    events = before + after
    if mode == "logger":
        assert stored_event_count(postgres_dsn) == len(events)
    elif mode == "stats":
        assert stored_stats(postgres_dsn) == expected_stats(events)
        assert redis_stats(consumer_redis) == expected_stats(events)
    else:
        assert stored_boards(postgres_dsn) == expected_boards(events)
        assert redis_boards(consumer_redis) == expected_boards(events)


def test_a_bug_in_a_mode_sends_only_its_record_to_the_dlq_as_internal_error(
    stack: Stack,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    """A fault injected into the mode (it raises for one player) stands for a bug of ours."""
    topic = create_topic(partitions=2)
    events = with_ids(generate_events(500, seed=5))
    produce_events(stack.kafka_bootstrap, topic, events)
    consumer = Consumer(consumer_settings("stats", topic, batch_size=100))
    real_write = consumer.mode.write

    def buggy_write(cursor: Any, items: Any, now: Any, staged: Any = None) -> Any:
        if any(g.event.player_id == "p7" for g in items):
            raise KeyError("p7")
        return real_write(cursor, items, now, staged)

    consumer.mode.write = buggy_write  # type: ignore[method-assign,assignment]
    with running(consumer):
        wait_for(lambda: processed_count(postgres_dsn) >= 500, timeout=90, what="all records")
        assert consumer.health.ready
    poisoned = [e for e in events if e["player_id"] == "p7"]
    assert poisoned
    found = rows(postgres_dsn, "SELECT reason, message FROM dlq_events")
    assert len(found) == len(poisoned)
    assert all(reason == "internal_error" and "KeyError" in message for reason, message in found)
    healthy = [e for e in events if e["player_id"] != "p7"]
    assert stored_stats(postgres_dsn) == expected_stats(healthy)
    assert redis_stats(consumer_redis) == expected_stats(healthy)
    samples = {
        s.labels.get("stage"): s.value
        for family in consumer.metrics.internal_errors.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert samples.get("write") == len(poisoned)


@pytest.mark.parametrize("mode", ["stats", "leaderboard"])
def test_retried_events_count_once_across_replicas_restarts_and_rebalances(  # noqa: PLR0917 - fixtures
    mode: str,
    stack: Stack,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=3)
    events = with_ids(generate_events(1500, seed=6))
    rng = random.Random(6)  # noqa: S311 - reproducible test data
    retried = rng.sample(events, 300)
    produce_events(stack.kafka_bootstrap, topic, events[:1000])
    # Retries land next to their originals (same batch) and far from them (a later batch).
    produce_events(stack.kafka_bootstrap, topic, retried[:100] + events[1000:] + retried[100:])
    total = 1500 + 300
    first = Consumer(consumer_settings(mode, topic, batch_size=150))
    second = Consumer(consumer_settings(mode, topic, batch_size=150))
    with running(first):
        wait_for(lambda: processed_count(postgres_dsn) >= 600, timeout=60, what="a head start")
        with running(second):  # joins: a rebalance in the middle of the run
            wait_for(lambda: processed_count(postgres_dsn) >= 1200, timeout=60, what="more")
        # the second leaves: another rebalance; then the retried events once more
        produce_events(stack.kafka_bootstrap, topic, retried)
        wait_for(
            lambda: processed_count(postgres_dsn) >= total + 300, timeout=90, what="all records"
        )
    third = Consumer(consumer_settings(mode, topic, batch_size=150))
    produce_events(stack.kafka_bootstrap, topic, retried[:50])  # and after a restart
    with running(third):
        wait_for(lambda: processed_count(postgres_dsn) >= total + 350, timeout=90, what="the last")
    if mode == "stats":
        assert stored_stats(postgres_dsn) == expected_stats(events)
        assert redis_stats(consumer_redis) == expected_stats(events)
        duplicates = 650
    else:
        assert stored_boards(postgres_dsn) == expected_boards(events)
        assert redis_boards(consumer_redis) == expected_boards(events)
        duplicates = sum(
            e["event_type"] in ("match_completed", "player_level_up")
            for e in retried + retried + retried[:50]
        )
    seen = sum(counter(c.metrics.duplicates) for c in (first, second, third))
    assert seen == duplicates


def test_a_renamed_group_continues_from_the_sinks_progress(
    stack: Stack,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=3)
    first, second = generate_events(1000, seed=8), generate_events(500, seed=9)
    produce_events(stack.kafka_bootstrap, topic, first)
    old = Consumer(consumer_settings("stats", topic, consumer_group="stats-before-rename"))
    with running(old):
        wait_for(lambda: processed_count(postgres_dsn) >= 1000, timeout=60, what="the first")
    produce_events(stack.kafka_bootstrap, topic, second)
    new = Consumer(consumer_settings("stats", topic, consumer_group="stats-after-rename"))
    with running(new):
        wait_for(lambda: processed_count(postgres_dsn) >= 1500, timeout=60, what="the second")
    assert counter(new.metrics.processed) == 500  # nothing of the first run again
    assert counter(new.metrics.duplicates) == 0
    assert counter(new.metrics.replayed) == 0
    assert stored_stats(postgres_dsn) == expected_stats(first + second)
    assert redis_stats(consumer_redis) == expected_stats(first + second)


def recreate(admin: AdminClient, topic: str, partitions: int) -> None:
    admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
    deadline = time.monotonic() + 60
    while True:  # the broker finishes a deletion in the background
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
        try:
            futures[topic].result(timeout=30)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        else:
            return


def test_a_recreated_topic_is_noticed_and_read_from_its_beginning(  # noqa: PLR0917 - fixtures
    stack: Stack,
    kafka_admin: AdminClient,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=2)
    old, new = generate_events(1200, seed=10), generate_events(300, seed=11)
    produce_events(stack.kafka_bootstrap, topic, old)
    settings = consumer_settings("stats", topic, batch_size=100)
    first = Consumer(settings)
    with running(first):
        wait_for(lambda: processed_count(postgres_dsn) >= 1200, timeout=60, what="the old")
    recreate(kafka_admin, topic, partitions=2)
    # The new incarnation's offsets (0..~150 a partition) are all below the stored ones.
    produce_events(stack.kafka_bootstrap, topic, new)
    second = Consumer(settings)
    with running(second):
        wait_for(
            lambda: counter(second.metrics.processed) >= 300, timeout=60, what="the new records"
        )
        assert counter(second.metrics.topic_recreated) == 2  # one per partition
    assert stored_stats(postgres_dsn) == expected_stats(old + new)
    assert redis_stats(consumer_redis) == expected_stats(old + new)
    stored = rows(postgres_dsn, "SELECT sum(next_offset) FROM sink_offsets")
    assert stored == [(300,)]


def test_a_topic_recreated_under_a_running_consumer_is_read_from_its_beginning(  # noqa: PLR0917 - fixtures
    stack: Stack,
    kafka_admin: AdminClient,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    """The partitions may stay assigned through the deletion: only the offsets start over."""
    topic = create_topic(partitions=2)
    old, new = generate_events(1200, seed=12), generate_events(300, seed=13)
    produce_events(stack.kafka_bootstrap, topic, old)
    consumer = Consumer(consumer_settings("stats", topic, batch_size=100))
    with running(consumer):
        wait_for(lambda: processed_count(postgres_dsn) >= 1200, timeout=60, what="the old")
        recreate(kafka_admin, topic, partitions=2)
        produce_events(stack.kafka_bootstrap, topic, new)
        wait_for(lambda: counter(consumer.metrics.processed) >= 1500, timeout=90, what="the new")
    assert stored_stats(postgres_dsn) == expected_stats(old + new)
    assert redis_stats(consumer_redis) == expected_stats(old + new)
    assert rows(postgres_dsn, "SELECT sum(next_offset) FROM sink_offsets") == [(300,)]
