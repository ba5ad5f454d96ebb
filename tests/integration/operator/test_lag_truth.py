"""Lag the operator reads is true, so a `replicas.min: 0` EventConsumer goes back to zero: Kafka's
copy of the offsets left behind PostgreSQL's (a crash between the two commits, here rewound by
hand while the group is empty) wakes one replica, which gives Kafka PostgreSQL's offsets without
a record to carry them; the operator then sees lag 0 and scales to zero again."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.fixtures.pipeline import stored_event_count, wait_stored
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import Cluster, body, produce, scaled_from_zero

pytestmark = pytest.mark.usefixtures("operator", "podrunner")
EVENTS = 600


def group_is_empty(admin: AdminClient, group: str) -> bool:
    """No member left (a commit from outside the group is accepted only then)."""
    described = admin.describe_consumer_groups([group], request_timeout=10)[group].result(10)
    return bool(described.state == ConsumerGroupState.EMPTY)


def test_kafkas_copy_behind_postgres_wakes_one_replica_and_scales_back_to_zero(
    cluster: Cluster, stack: Stack, kafka_admin: AdminClient, topic_name: str, postgres_dsn: str
) -> None:
    from_zero = scaled_from_zero(3, 1000, scaleDownStabilizationSeconds=5, maxScaleDownStep=3)
    cluster.create(body(cluster.namespace, "idle", stack, topic_name, **from_zero))
    cluster.wait_condition("idle", "Ready", "True", timeout=60)

    produce(stack, topic_name, EVENTS)
    wait_stored(postgres_dsn, EVENTS, what="the events stored")
    wait_for(
        lambda: cluster.at_zero_without_lag("idle"),
        timeout=90,
        what="lag 0 and zero replicas after the backlog",
    )

    # The crash between the commits: PostgreSQL has every offset, Kafka's copy says none.
    group = cluster.get("idle")["status"]["consumerGroup"]
    wait_for(lambda: group_is_empty(kafka_admin, group), timeout=60, what="the group to empty")
    rewind = KafkaConsumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": group})
    rewind.commit(offsets=[TopicPartition(topic_name, p, 0) for p in range(3)], asynchronous=False)
    rewind.close()
    wait_for(
        lambda: cluster.lag_total("idle") == EVENTS,
        timeout=30,
        what="the operator to see the phantom lag",
    )
    # Only a consumer can tell Kafka: one is woken, and gives it PostgreSQL's offsets.
    wait_for(
        lambda: cluster.at_zero_without_lag("idle"),
        timeout=90,
        what="lag 0 and zero replicas again",
    )
    assert stored_event_count(postgres_dsn) == EVENTS  # nothing was read twice
