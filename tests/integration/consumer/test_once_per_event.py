"""Issue 13 on the real stack: no record stops a partition, no event counts twice, nothing is
skipped in silence (poison records, a bug in a mode, retried events, a renamed group, a
recreated topic)."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from eventfleet.consumer.runtime import Consumer
from tests.fixtures.consumer_bench import ConsumerBench, in_both_stores
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.expected import expected_boards, expected_stats
from tests.integration.consumer.helpers import counter, generate_events, run_until_done, running

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


def dlq_reasons(bench: ConsumerBench) -> list[str]:
    return [r for (r,) in bench.rows("SELECT reason FROM dlq_events ORDER BY kafka_offset")]


@pytest.mark.parametrize("mode", ["logger", "stats", "leaderboard"])
def test_poison_records_go_to_the_dlq_and_the_partition_moves_on(
    mode: str, bench: ConsumerBench
) -> None:
    topic = bench.topic(partitions=1)  # one partition: the poison sits between the others
    before, after = generate_events(300, seed=3), generate_events(300, seed=4)
    bench.produce(topic, before)
    bench.produce_raw(topic, [POISON_DEEP, POISON_DUPLICATE])
    bench.produce(topic, after)
    consumer = bench.consumer(mode, topic, batch_size=100)
    with running(consumer):
        bench.wait_processed(602, timeout=90, what="every record, the poison included")
        assert consumer.health.ready
    assert dlq_reasons(bench) == ["too_deep", "duplicate_key"]
    events = before + after
    if mode == "logger":
        assert bench.rows("SELECT count(*) FROM events") == [(len(events),)]
    elif mode == "stats":
        assert bench.stats() == in_both_stores(expected_stats(events))
    else:
        assert bench.boards() == in_both_stores(expected_boards(events))


def test_a_bug_in_a_mode_sends_only_its_record_to_the_dlq_as_internal_error(
    bench: ConsumerBench,
) -> None:
    """A fault injected into the mode (it raises for one player) stands for a bug of ours."""
    events = with_ids(generate_events(500, seed=5))
    topic = bench.topic_with(events, partitions=2)
    consumer = bench.consumer("stats", topic, batch_size=100)
    real_write = consumer.mode.write

    def buggy_write(cursor: Any, items: Any, now: Any, staged: Any = None) -> Any:
        if any(g.event.player_id == "p7" for g in items):
            raise KeyError("p7")
        return real_write(cursor, items, now, staged)

    consumer.mode.write = buggy_write  # type: ignore[method-assign,assignment]
    with running(consumer):
        bench.wait_processed(500, timeout=90, what="all records")
        assert consumer.health.ready
    poisoned = [e for e in events if e["player_id"] == "p7"]
    assert poisoned
    found = bench.rows("SELECT reason, message FROM dlq_events")
    assert len(found) == len(poisoned)
    assert all(reason == "internal_error" and "KeyError" in message for reason, message in found)
    healthy = [e for e in events if e["player_id"] != "p7"]
    assert bench.stats() == in_both_stores(expected_stats(healthy))
    samples = {
        s.labels.get("stage"): s.value
        for family in consumer.metrics.internal_errors.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert samples.get("write") == len(poisoned)


@pytest.mark.parametrize("mode", ["stats", "leaderboard"])
def test_retried_events_count_once_across_replicas_restarts_and_rebalances(
    mode: str, bench: ConsumerBench
) -> None:
    events = with_ids(generate_events(1500, seed=6))
    rng = random.Random(6)  # noqa: S311 - reproducible test data
    retried = rng.sample(events, 300)
    topic = bench.topic_with(events[:1000], partitions=3)
    # Retries land next to their originals (same batch) and far from them (a later batch).
    bench.produce(topic, retried[:100] + events[1000:] + retried[100:])
    total = 1500 + 300
    first = bench.consumer(mode, topic, batch_size=150)
    second = bench.consumer(mode, topic, batch_size=150)
    with running(first):
        bench.wait_processed(600, timeout=60, what="a head start")
        with running(second):  # joins: a rebalance in the middle of the run
            bench.wait_processed(1200, timeout=60, what="more")
        # the second leaves: another rebalance; then the retried events once more
        bench.produce(topic, retried)
        bench.wait_processed(total + 300, timeout=90, what="all records")
    third = bench.consumer(mode, topic, batch_size=150)
    bench.produce(topic, retried[:50])  # and after a restart
    with running(third):
        bench.wait_processed(total + 350, timeout=90, what="the last")
    if mode == "stats":
        assert bench.stats() == in_both_stores(expected_stats(events))
        duplicates = 650
    else:
        assert bench.boards() == in_both_stores(expected_boards(events))
        duplicates = sum(
            e["event_type"] in ("match_completed", "player_level_up")
            for e in retried + retried + retried[:50]
        )
    seen = sum(counter(c.metrics.duplicates) for c in (first, second, third))
    assert seen == duplicates


def test_a_renamed_group_continues_from_the_sinks_progress(bench: ConsumerBench) -> None:
    first, second = generate_events(1000, seed=8), generate_events(500, seed=9)
    topic = bench.topic_with(first, partitions=3)
    old = bench.consumer("stats", topic, consumer_group="stats-before-rename")
    with running(old):
        bench.wait_processed(1000, timeout=60, what="the first")
    bench.produce(topic, second)
    new = bench.consumer("stats", topic, consumer_group="stats-after-rename")
    with running(new):
        bench.wait_processed(1500, timeout=60, what="the second")
    assert counter(new.metrics.processed) == 500  # nothing of the first run again
    assert counter(new.metrics.duplicates) == 0
    assert counter(new.metrics.replayed) == 0
    assert bench.stats() == in_both_stores(expected_stats(first + second))


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


def stats_consumer_of_old_events(
    bench: ConsumerBench, seed: int
) -> tuple[str, Consumer, list[dict[str, Any]], list[dict[str, Any]]]:
    """A 2-partition topic holding 1200 old events (of `seed`), a stats consumer of it (not yet
    started), and 300 new events (of `seed` + 1) for the topic's next incarnation."""
    old, new = generate_events(1200, seed=seed), generate_events(300, seed=seed + 1)
    topic = bench.topic_with(old, partitions=2)
    return topic, bench.consumer("stats", topic, batch_size=100), old, new


def recreated_with_new_events(
    bench: ConsumerBench, admin: AdminClient, topic: str, new: list[dict[str, Any]]
) -> None:
    """`topic` deleted and created again with its 2 partitions, then `new` produced to it: the
    new incarnation's offsets (0..~150 a partition) are all below the ones stored before."""
    recreate(admin, topic, partitions=2)
    bench.produce(topic, new)


def assert_counted_once_from_the_beginning(
    bench: ConsumerBench, everything: list[dict[str, Any]]
) -> None:
    """After a recreated topic: every event of both incarnations counted once, and the stored
    offsets those of the new one (300 records)."""
    assert bench.stats() == in_both_stores(expected_stats(everything))
    assert bench.rows("SELECT sum(next_offset) FROM sink_offsets") == [(300,)]


def test_a_recreated_topic_is_noticed_and_read_from_its_beginning(
    bench: ConsumerBench, kafka_admin: AdminClient
) -> None:
    topic, first, old, new = stats_consumer_of_old_events(bench, seed=10)
    run_until_done(first, 1200, timeout=60)
    recreated_with_new_events(bench, kafka_admin, topic, new)
    second = bench.consumer("stats", topic, batch_size=100)
    with running(second):
        wait_for(
            lambda: counter(second.metrics.processed) >= 300, timeout=60, what="the new records"
        )
        assert counter(second.metrics.topic_recreated) == 2  # one per partition
    assert_counted_once_from_the_beginning(bench, old + new)


def test_a_topic_recreated_under_a_running_consumer_is_read_from_its_beginning(
    bench: ConsumerBench, kafka_admin: AdminClient
) -> None:
    """The partitions may stay assigned through the deletion: only the offsets start over."""
    topic, consumer, old, new = stats_consumer_of_old_events(bench, seed=12)
    with running(consumer):
        bench.wait_processed(1200, timeout=60, what="the old")
        recreated_with_new_events(bench, kafka_admin, topic, new)
        wait_for(lambda: counter(consumer.metrics.processed) >= 1500, timeout=90, what="the new")
    assert_counted_once_from_the_beginning(bench, old + new)
