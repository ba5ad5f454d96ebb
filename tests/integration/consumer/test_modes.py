"""stats and leaderboard modes on the real stack: PostgreSQL and Redis hold exactly what an
independent computation over the produced events says, also after Redis is flushed mid-run and
with two consumers sharing the partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fixtures.consumer_bench import ConsumerBench, in_both_stores
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.expected import expected_boards, expected_stats, redis_stats
from tests.integration.consumer.helpers import counter, generate_events, run_until_done, running

pytestmark = pytest.mark.integration


def test_stats_exact_in_postgres_and_redis_and_repaired_after_a_flush(bench: ConsumerBench) -> None:
    first = generate_events(4000, seed=1)
    topic = bench.topic_with(first, partitions=3)
    consumer = bench.consumer("stats", topic, batch_size=200)
    with running(consumer):
        bench.wait_processed(len(first), timeout=90, what="the first events")
        assert bench.stats() == in_both_stores(expected_stats(first))

        bench.redis.flushdb()  # Redis lost everything (restart without persistence, FLUSHDB)
        second = generate_events(1000, seed=2)
        bench.produce(topic, second)
        bench.wait_processed(len(first) + len(second), timeout=90, what="the second events")
    # Redis rebuilt from PostgreSQL, not just patched:
    assert bench.stats() == in_both_stores(expected_stats(first + second))
    assert counter(consumer.metrics.redis_resyncs) >= 2  # the first start, then the flush


def test_a_restart_trusts_redis_in_step_and_rebuilds_redis_left_behind(
    bench: ConsumerBench,
) -> None:
    """A graceful restart (a rollout, a scale-up) must not rebuild every value; a marker that
    records less than PostgreSQL (a crash between commit and the Redis write) must."""
    topic = bench.topic(partitions=3)
    sent: list[dict[str, object]] = []
    resyncs = []
    for seed in (11, 12, 13):
        if seed == 13:  # Redis missed a committed batch: its marker is behind on a partition
            marker = next(iter(bench.redis.scan_iter(match="eventfleet:synced:*")))
            bench.redis.hset(marker, f"{topic}/0", 0)
        events = generate_events(1500, seed=seed)
        bench.produce(topic, events)
        sent += events
        consumer = bench.consumer("stats", topic, batch_size=200)
        run_until_done(consumer, len(sent))
        resyncs.append(counter(consumer.metrics.redis_resyncs))
        assert redis_stats(bench.redis) == expected_stats(sent)
    assert resyncs == [1, 0, 1]  # an empty Redis at first; in step; behind


# ----------------------------------------------------------------------------- leaderboards


def test_leaderboards_exact_with_two_consumers_splitting_the_partitions(
    bench: ConsumerBench,
) -> None:
    topic = bench.topic(partitions=4)
    events = generate_events(6000, seed=3, players=60)
    one, two = (bench.consumer("leaderboard", topic, batch_size=100) for _ in range(2))
    with running(one), running(two):
        # Both in the group first, so that neither finishes alone before the other joins.
        wait_for(
            lambda: len(one.source.assigned) == 2 and len(two.source.assigned) == 2,
            timeout=60,
            what="the group to split the 4 partitions",
        )
        bench.produce(topic, events)
        bench.wait_processed(len(events), timeout=120, what="all events")
    # Both took part: each processed some of the events, together exactly all of them.
    assert counter(one.metrics.consumed) > 0
    assert counter(two.metrics.consumed) > 0
    assert bench.boards() == in_both_stores(expected_boards(events))


def test_leaderboard_keeps_only_the_top_n_in_redis(bench: ConsumerBench) -> None:
    events = generate_events(1500, seed=4, players=30, games=1)
    topic = bench.topic_with(events, partitions=2)
    run_until_done(bench.consumer("leaderboard", topic, top_n=5), len(events))
    expected = expected_boards(events)
    totals = sorted(
        ((score, player) for (g, b, p, _, player), score in expected.items()
         if (b, p) == ("total_score", "all_time")),
        reverse=True,
    )  # fmt: skip
    top = bench.redis.zrevrange("leaderboard:game1:total_score:all_time", 0, -1, withscores=True)
    assert [(int(entry[1]), str(entry[0])) for entry in top] == totals[:5]
    assert bench.redis.ttl("leaderboard:game1:total_score:all_time") == -1
    daily = next(iter(bench.redis.scan_iter(match="leaderboard:game1:wins:daily:*")))
    assert bench.redis.ttl(daily) > 0  # expires with its keep time


def test_the_time_format_of_stats_in_redis_is_always_as_long_as_its_packed_length_says(
    bench: ConsumerBench,
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
    found = bench.rows(
        f"SELECT to_char(t AT TIME ZONE 'UTC', {_ISO}) FROM unnest(%s::timestamptz[]) AS t",  # noqa: S608 - constants
        instants,
    )
    assert [len(text) for (text,) in found] == [_ISO_LENGTH] * len(instants)
    assert found[0] == ("2000-01-01T00:00:00.000000+00:00",)
