"""Kafka itself dies mid-run (SIGKILL, a broker of the test's own) and comes back: the consumer
stays up, reconnects by itself and ends with exact totals — nothing lost, nothing counted twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from eventfleet.consumer.runtime import Consumer
from eventfleet.consumer.settings import ConsumerSettings
from tests.fixtures.net import free_port
from tests.fixtures.private_kafka import PrivateKafka, private_kafka
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.expected import expected_stats, redis_stats, stored_stats
from tests.integration.consumer.helpers import (
    generate_events,
    processed_count,
    produce_events,
    running,
)
from tests.integration.consumer.test_failures import probe

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 6


@pytest.fixture
def broker() -> Iterator[PrivateKafka]:
    with private_kafka() as started:
        yield started


def test_kafka_killed_mid_run_then_back_the_consumer_reconnects_and_counts_exactly(
    broker: PrivateKafka,
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = "outage"
    broker.create_topic(topic, partitions=3)
    first = generate_events(4000, seed=31)
    second = generate_events(3000, seed=32)
    produce_events(broker.bootstrap, topic, first)
    port = free_port()
    settings = consumer_settings(
        "stats",
        topic,
        bootstrap=broker.bootstrap,
        batch_size=100,
        http_port=port,
        http_host="127.0.0.1",
    )
    consumer = Consumer(settings)
    with running(consumer):
        wait_for(
            lambda: processed_count(postgres_dsn) >= 500,
            timeout=60,
            what="progress before the broker dies",
        )
        broker.kill()
        # Long enough for every connection to fail and librdkafka to start retrying.
        time.sleep(OUTAGE_SECONDS)
        assert probe(port, "/healthz") == 200  # alive, not crashed or crash-looping
        broker.start()
        produce_events(broker.bootstrap, topic, second)
        wait_for(
            lambda: processed_count(postgres_dsn) >= len(first) + len(second),
            timeout=120,
            what="catching up after Kafka came back",
        )
        assert processed_count(postgres_dsn) == len(first) + len(second)
    expected = expected_stats(first + second)
    assert stored_stats(postgres_dsn) == expected
    assert redis_stats(consumer_redis) == expected
