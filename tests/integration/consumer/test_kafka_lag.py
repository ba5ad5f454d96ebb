"""Lag is true: Kafka's copy of the offsets catches up with PostgreSQL's even when no record
arrives to carry a commit. Kafka's copy behind PostgreSQL's is what a crash between the two
commits leaves (here: rewound by hand while the group is empty); no copy at all is what Kafka's
expiry of an empty group's offsets leaves (here: the group deleted). Lag is read the way the
operator reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from eventfleet.operator import kafka_admin as operator_kafka
from eventfleet.operator.kafka_auth import KafkaConnection
from eventfleet.operator.scaling import measure_lag
from tests.fixtures.consumer_bench import ConsumerBench
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.helpers import generate_events, run_until_done, running

pytestmark = pytest.mark.integration
EVENTS = 300
PARTITIONS = 2


@pytest.fixture(autouse=True)
def _close_lag_readers() -> Iterator[None]:
    yield
    operator_kafka.close_readers()


def lag(bench: ConsumerBench, topic: str) -> int:
    """The test group's lag on `topic`, read as the operator reads it."""
    connection = KafkaConnection(bench.stack.kafka_bootstrap)
    return measure_lag(operator_kafka.group_offsets(connection, topic, bench.group)).total


def processed_once(bench: ConsumerBench, seed: int) -> str:
    """A topic of EVENTS events, processed by a logger consumer, and Kafka told so (lag 0: as
    the old code also got here)."""
    topic = bench.topic_with(generate_events(EVENTS, seed=seed), partitions=PARTITIONS)
    run_until_done(bench.consumer("logger", topic), EVENTS)
    wait_for(lambda: lag(bench, topic) == 0, timeout=30, what="lag 0 after the run")
    return topic


def idle_consumer_brings_lag_to_zero(bench: ConsumerBench, topic: str) -> None:
    with running(bench.consumer("logger", topic)):
        wait_for(
            lambda: lag(bench, topic) == 0,
            timeout=30,
            what="an idle consumer to give Kafka PostgreSQL's offsets",
        )
    assert bench.processed() == EVENTS
    assert bench.rows("SELECT count(*) FROM events") == [(EVENTS,)]  # nothing read again


def test_kafkas_copy_left_behind_by_a_crash_between_the_commits_catches_up_while_idle(
    bench: ConsumerBench,
) -> None:
    topic = processed_once(bench, seed=3)
    # What a crash after PostgreSQL's commit and before Kafka's leaves: Kafka's copy behind.
    bench.rewind_kafka_offsets(topic, PARTITIONS)
    assert lag(bench, topic) == EVENTS
    idle_consumer_brings_lag_to_zero(bench, topic)


def test_offsets_kafka_expired_come_back_from_postgres_at_the_next_start(
    bench: ConsumerBench, kafka_admin: AdminClient
) -> None:
    topic = processed_once(bench, seed=4)
    # What Kafka does to the offsets of a group empty for offsets.retention.minutes.
    kafka_admin.delete_consumer_groups([bench.group], request_timeout=30)[bench.group].result(30)
    assert lag(bench, topic) == EVENTS  # no offsets: the whole topic
    idle_consumer_brings_lag_to_zero(bench, topic)
