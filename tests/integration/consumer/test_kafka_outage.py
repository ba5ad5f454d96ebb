"""Kafka itself dies mid-run (SIGKILL, a broker of the test's own) and comes back: the consumer
stays up, reconnects by itself and ends with exact totals — nothing lost, nothing counted twice."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fixtures.consumer_bench import ConsumerBench, in_both_stores
from tests.fixtures.net import free_port
from tests.fixtures.private_kafka import PrivateKafka, private_kafka
from tests.integration.consumer.expected import expected_stats
from tests.integration.consumer.helpers import generate_events, http_status, produce_events, running

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 6


@pytest.fixture
def broker() -> Iterator[PrivateKafka]:
    with private_kafka() as started:
        yield started


def test_kafka_killed_mid_run_then_back_the_consumer_reconnects_and_counts_exactly(
    broker: PrivateKafka, bench: ConsumerBench
) -> None:
    topic = "outage"
    broker.create_topic(topic, partitions=3)
    first = generate_events(4000, seed=31)
    second = generate_events(3000, seed=32)
    produce_events(broker.bootstrap, topic, first)
    port = free_port()
    consumer = bench.consumer(
        "stats",
        topic,
        bootstrap=broker.bootstrap,
        batch_size=100,
        http_port=port,
        http_host="127.0.0.1",
    )
    with running(consumer):
        bench.wait_processed(500, timeout=60, what="progress before the broker dies")
        broker.kill()
        # Long enough for every connection to fail and librdkafka to start retrying.
        time.sleep(OUTAGE_SECONDS)
        assert http_status(port, "/healthz") == 200  # alive, not crashed or crash-looping
        broker.start()
        produce_events(broker.bootstrap, topic, second)
        bench.wait_processed(
            len(first) + len(second), timeout=120, what="catching up after Kafka came back"
        )
        assert bench.processed() == len(first) + len(second)
    assert bench.stats() == in_both_stores(expected_stats(first + second))
