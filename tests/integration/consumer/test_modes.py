"""stats and leaderboard modes on the real stack: PostgreSQL and Redis hold exactly what an
independent computation over the produced events says, also after Redis is flushed mid-run and
with two consumers sharing the partitions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

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
    produce_events,
    rows,
    run_until_done,
    running,
)

pytestmark = pytest.mark.integration


def test_stats_exact_in_postgres_and_redis_and_repaired_after_a_flush(
    stack: Stack,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=3)
    first = generate_events(4000, seed=1)
    produce_events(stack.kafka_bootstrap, topic, first)
    settings = consumer_settings("stats", topic, batch_size=200)
    consumer = Consumer(settings)
    with running(consumer):
        wait_for(
            lambda: processed_count(postgres_dsn) >= len(first),
            timeout=90,
            what="the first events",
        )
        assert stored_stats(postgres_dsn) == expected_stats(first)
        assert redis_stats(consumer_redis) == expected_stats(first)

        consumer_redis.flushdb()  # Redis lost everything (restart without persistence, FLUSHDB)
        second = generate_events(1000, seed=2)
        produce_events(stack.kafka_bootstrap, topic, second)
        wait_for(
            lambda: processed_count(postgres_dsn) >= len(first) + len(second),
            timeout=90,
            what="the second events",
        )
    everything = expected_stats(first + second)
    assert stored_stats(postgres_dsn) == everything
    assert redis_stats(consumer_redis) == everything  # rebuilt from PostgreSQL, not just patched
    assert counter(consumer.metrics.redis_resyncs) >= 2  # the first start, then the flush


def test_a_restart_trusts_redis_in_step_and_rebuilds_redis_left_behind(
    stack: Stack,
    create_topic: Callable[..., str],
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    """A graceful restart (a rollout, a scale-up) must not rebuild every value; a marker that
    records less than PostgreSQL (a crash between commit and the Redis write) must."""
    topic = create_topic(partitions=3)
    settings = consumer_settings("stats", topic, batch_size=200)
    sent: list[dict[str, object]] = []
    resyncs = []
    for seed in (11, 12, 13):
        if seed == 13:  # Redis missed a committed batch: its marker is behind on a partition
            marker = next(iter(consumer_redis.scan_iter(match="eventfleet:synced:*")))
            consumer_redis.hset(marker, f"{topic}/0", 0)
        events = generate_events(1500, seed=seed)
        produce_events(stack.kafka_bootstrap, topic, events)
        sent += events
        consumer = Consumer(settings)
        run_until_done(consumer, len(sent))
        resyncs.append(counter(consumer.metrics.redis_resyncs))
        assert redis_stats(consumer_redis) == expected_stats(sent)
    assert resyncs == [1, 0, 1]  # an empty Redis at first; in step; behind


# ----------------------------------------------------------------------------- leaderboards


def test_leaderboards_exact_with_two_consumers_splitting_the_partitions(
    stack: Stack,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=4)
    events = generate_events(6000, seed=3, players=60)
    settings = consumer_settings("leaderboard", topic, batch_size=100)
    one, two = Consumer(settings), Consumer(settings)
    with running(one), running(two):
        # Both in the group first, so that neither finishes alone before the other joins.
        wait_for(
            lambda: len(one.source.assigned) == 2 and len(two.source.assigned) == 2,
            timeout=60,
            what="the group to split the 4 partitions",
        )
        produce_events(stack.kafka_bootstrap, topic, events)
        wait_for(
            lambda: processed_count(postgres_dsn) >= len(events),
            timeout=120,
            what="all events",
        )
    # Both took part: each processed some of the events, together exactly all of them.
    assert counter(one.metrics.consumed) > 0
    assert counter(two.metrics.consumed) > 0
    expected = expected_boards(events)
    assert stored_boards(postgres_dsn) == expected
    assert redis_boards(consumer_redis) == expected


def test_leaderboard_keeps_only_the_top_n_in_redis(
    stack: Stack,
    create_topic: Callable[..., str],
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=2)
    events = generate_events(1500, seed=4, players=30, games=1)
    produce_events(stack.kafka_bootstrap, topic, events)
    settings = consumer_settings("leaderboard", topic, top_n=5)
    run_until_done(Consumer(settings), len(events))
    expected = expected_boards(events)
    totals = sorted(
        ((score, player) for (g, b, p, _, player), score in expected.items()
         if (b, p) == ("total_score", "all_time")),
        reverse=True,
    )  # fmt: skip
    top = consumer_redis.zrevrange("leaderboard:game1:total_score:all_time", 0, -1, withscores=True)
    assert [(int(entry[1]), str(entry[0])) for entry in top] == totals[:5]
    assert consumer_redis.ttl("leaderboard:game1:total_score:all_time") == -1
    daily = next(iter(consumer_redis.scan_iter(match="leaderboard:game1:wins:daily:*")))
    assert consumer_redis.ttl(daily) > 0  # expires with its keep time


def test_the_time_format_of_stats_in_redis_is_always_as_long_as_its_packed_length_says(
    postgres_dsn: str,
) -> None:
    """REDIS_PACKED gives first_seen and last_seen a constant RESP length: true for every
    instant an event may carry (from EARLIEST_TIMESTAMP to shortly after now)."""
    from eventfleet.consumer.modes.stats import _ISO, _ISO_LENGTH  # noqa: PLC0415 - internals
    from eventfleet.contract.events import EARLIEST_TIMESTAMP  # noqa: PLC0415

    instants = [
        EARLIEST_TIMESTAMP,
        EARLIEST_TIMESTAMP.replace(microsecond=1),
        datetime.now(UTC),
        datetime.now(UTC).replace(microsecond=0) + timedelta(days=2),
    ]
    found = rows(
        postgres_dsn,
        f"SELECT to_char(t AT TIME ZONE 'UTC', {_ISO}) FROM unnest(%s::timestamptz[]) AS t",  # noqa: S608 - constants
        instants,
    )
    assert [len(text) for (text,) in found] == [_ISO_LENGTH] * len(instants)
    assert found[0] == ("2000-01-01T00:00:00.000000+00:00",)
