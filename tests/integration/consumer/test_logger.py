"""logger mode on the real stack: every valid event stored once, whatever is replayed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition

from eventfleet.contract.events import derived_event_id
from tests.fixtures.consumer_bench import ConsumerBench
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.helpers import counter, generate_events, run_until_done, running

pytestmark = pytest.mark.integration


def test_logger_stores_every_event_once_and_a_replay_changes_nothing(
    bench: ConsumerBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = generate_events(3000)
    events += events[1:200:7]  # the producer sent some twice: same event_id, stored once
    topic = bench.topic_with(events, partitions=3)
    run_until_done(bench.consumer("logger", topic), len(events))

    stored = bench.rows(
        "SELECT event_id, kafka_topic, kafka_partition, kafka_offset, "
        "event_type, player_id, game_id, data FROM events",
    )
    ids_with_id = {uuid.UUID(e["event_id"]) for e in events if "event_id" in e}
    without_id = sum(1 for e in events if "event_id" not in e)
    assert len(stored) == len(ids_with_id) + without_id
    by_id = {row[0]: row for row in stored}
    for event in events:
        if "event_id" in event:
            row = by_id[event["event_id"]]
            assert (row[4], row[5], row[6]) == (
                event["event_type"],
                event["player_id"],
                event["game_id"],
            )
            assert row[7] == event["data"]
    ((topic_id,),) = bench.rows("SELECT DISTINCT topic_id FROM sink_offsets")
    for row in stored:
        if row[0] not in {str(i) for i in ids_with_id}:
            assert row[0] == str(derived_event_id(row[1], row[2], row[3], topic_id))
    before = bench.rows("SELECT count(*), sum(kafka_offset) FROM events")

    # Replay: Kafka's committed offsets go back to 0 and the consumer does not seek to the
    # stored ones, so the records come again; the transaction's offset check skips them (and
    # the consumer seeks forward to the stored offsets).
    offsets_before = bench.rows("SELECT * FROM sink_offsets ORDER BY 3")
    bench.rewind_kafka_offsets(topic, 3)
    again = bench.consumer("logger", topic)
    monkeypatch.setattr(again.store, "stored_offsets", lambda _tps: {})
    with running(again):
        wait_for(lambda: counter(again.metrics.replayed) >= 3, timeout=60, what="the replay")
    assert counter(again.metrics.processed) == 0
    assert bench.rows("SELECT count(*), sum(kafka_offset) FROM events") == before
    assert bench.rows("SELECT * FROM sink_offsets ORDER BY 3") == offsets_before
    assert bench.rows("SELECT count(*) FROM dlq_events") == [(0,)]


def test_event_time_is_the_instant_the_producer_wrote_in_every_timestamp_form(
    bench: ConsumerBench,
) -> None:
    """The COPY passes the producer's own timestamp text when the parser vouched for it:
    PostgreSQL must read the same instant the event model did, whatever the offset and
    however many fraction digits."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    forms = {
        "Z": base.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fraction 1": base.strftime("%Y-%m-%dT%H:%M:%S.5Z"),
        "fraction 3": base.strftime("%Y-%m-%dT%H:%M:%S.123Z"),
        "fraction 6": base.strftime("%Y-%m-%dT%H:%M:%S.000001Z"),
        "east": base.astimezone(timezone(timedelta(hours=2))).strftime(
            "%Y-%m-%dT%H:%M:%S.25+02:00"
        ),
        "west": base.astimezone(timezone(-timedelta(hours=5, minutes=30))).strftime(
            "%Y-%m-%dT%H:%M:%S-05:30"
        ),
        "zero offset": base.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
    }
    events = [
        {
            "event_id": str(uuid.UUID(int=n + 1)),
            "event_type": "player_login",
            "player_id": f"p{n}",
            "game_id": "g",
            "timestamp": text,
            "data": {},
        }
        for n, text in enumerate(forms.values())
    ]
    topic = bench.topic_with(events, partitions=1)
    run_until_done(bench.consumer("logger", topic), len(events))
    stored = dict(bench.rows("SELECT event_id::text, event_time FROM events"))
    for event in events:
        assert stored[event["event_id"]] == datetime.fromisoformat(str(event["timestamp"])), event


def test_kafka_is_sent_the_stored_offsets_once_the_consumer_is_idle(bench: ConsumerBench) -> None:
    """Kafka's copy of the offsets is sent at most every KAFKA_COMMIT_INTERVAL_SECONDS, not
    after every batch: what the last batches stored must still reach Kafka while the consumer
    waits for more (lag read from Kafka goes back to 0)."""
    events = generate_events(1500, seed=11)
    topic = bench.topic_with(events, partitions=3)
    # Small, quick batches: many more batches than commit intervals.
    consumer = bench.consumer("logger", topic, batch_size=50, batch_timeout_ms=10)
    reader = KafkaConsumer(
        {"bootstrap.servers": bench.stack.kafka_bootstrap, "group.id": bench.group}
    )
    partitions = [TopicPartition(topic, p) for p in range(3)]

    def in_kafka() -> dict[int, int]:
        return {tp.partition: tp.offset for tp in reader.committed(partitions, timeout=10)}

    try:
        with running(consumer):
            bench.wait_processed(len(events), timeout=60, what="every record processed")
            assert bench.rows("SELECT count(*) FROM events") == [(len(events),)]
            stored = dict(
                bench.rows(
                    "SELECT kafka_partition, next_offset FROM sink_offsets WHERE sink = 'logger'"
                )
            )
            assert sum(stored.values()) == len(events)
            wait_for(lambda: in_kafka() == stored, timeout=10, what="Kafka to have the offsets")
    finally:
        reader.close()
