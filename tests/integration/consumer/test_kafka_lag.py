"""Lag is true: Kafka's copy of the offsets catches up with PostgreSQL's even when no record
arrives to carry a commit. Kafka's copy behind PostgreSQL's is what a crash between the two
commits leaves (here: rewound by hand while the group is empty); no copy at all is what Kafka's
expiry of an empty group's offsets leaves (here: the group deleted). Lag is read the way the
operator reads it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from eventfleet.consumer.runtime import Consumer
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.operator import kafka_admin as operator_kafka
from eventfleet.operator.kafka_auth import KafkaConnection
from eventfleet.operator.scaling import measure_lag
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.helpers import (
    generate_events,
    processed_count,
    produce_events,
    rows,
    run_until_done,
    running,
)

pytestmark = pytest.mark.integration
EVENTS = 300
PARTITIONS = 2


@pytest.fixture(autouse=True)
def _close_lag_readers() -> Iterator[None]:
    yield
    operator_kafka.close_readers()


def lag(stack: Stack, topic: str, group: str) -> int:
    connection = KafkaConnection(stack.kafka_bootstrap)
    return measure_lag(operator_kafka.group_offsets(connection, topic, group)).total


def processed_once(stack: Stack, topic: str, group: str, settings: ConsumerSettings) -> None:
    """The events processed, and Kafka told so (lag 0: as the old code also got here)."""
    run_until_done(Consumer(settings), EVENTS)
    wait_for(lambda: lag(stack, topic, group) == 0, timeout=30, what="lag 0 after the run")


def idle_consumer_brings_lag_to_zero(
    stack: Stack, topic: str, group: str, settings: ConsumerSettings, dsn: str
) -> None:
    with running(Consumer(settings)):
        wait_for(
            lambda: lag(stack, topic, group) == 0,
            timeout=30,
            what="an idle consumer to give Kafka PostgreSQL's offsets",
        )
    assert processed_count(dsn) == EVENTS
    assert rows(dsn, "SELECT count(*) FROM events") == [(EVENTS,)]  # nothing read again


def test_kafkas_copy_left_behind_by_a_crash_between_the_commits_catches_up_while_idle(
    stack: Stack,
    create_topic: Callable[..., str],
    consumer_group: str,
    postgres_dsn: str,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=PARTITIONS)
    produce_events(stack.kafka_bootstrap, topic, generate_events(EVENTS, seed=3))
    settings = consumer_settings("logger", topic)
    processed_once(stack, topic, consumer_group, settings)
    # What a crash after PostgreSQL's commit and before Kafka's leaves: Kafka's copy behind.
    rewind = KafkaConsumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": consumer_group})
    rewind.commit(
        offsets=[TopicPartition(topic, p, 0) for p in range(PARTITIONS)], asynchronous=False
    )
    rewind.close()
    assert lag(stack, topic, consumer_group) == EVENTS
    idle_consumer_brings_lag_to_zero(stack, topic, consumer_group, settings, postgres_dsn)


def test_offsets_kafka_expired_come_back_from_postgres_at_the_next_start(  # noqa: PLR0917 - fixtures
    stack: Stack,
    create_topic: Callable[..., str],
    kafka_admin: AdminClient,
    consumer_group: str,
    postgres_dsn: str,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=PARTITIONS)
    produce_events(stack.kafka_bootstrap, topic, generate_events(EVENTS, seed=4))
    settings = consumer_settings("logger", topic)
    processed_once(stack, topic, consumer_group, settings)
    # What Kafka does to the offsets of a group empty for offsets.retention.minutes.
    kafka_admin.delete_consumer_groups([consumer_group], request_timeout=30)[consumer_group].result(
        30
    )
    assert lag(stack, topic, consumer_group) == EVENTS  # no offsets: the whole topic
    idle_consumer_brings_lag_to_zero(stack, topic, consumer_group, settings, postgres_dsn)
