"""Deletion always finishes, and never takes a topic another EventConsumer still reads."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient

from tests.fixtures.operator import TOPIC_DELETION_TIMEOUT_SECONDS
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import (
    Cluster,
    body,
    created_with_kafka_gone,
    taking_its_topic,
    topic_partitions,
)

pytestmark = pytest.mark.usefixtures("operator", "podrunner")


def test_deleting_with_kafka_gone_finishes_and_names_the_topic_left_behind(
    cluster: Cluster, stack: Stack, topic_name: str
) -> None:
    """A deletionPolicy: Delete EventConsumer whose Kafka cannot be reached is deleted after the
    topic-deletion timeout, with a Warning Event naming the topic left behind; the namespace
    does not stay Terminating."""
    created_with_kafka_gone(cluster, "orphan", stack, topic_name)
    cluster.delete("orphan")
    started = time.monotonic()
    wait_for(
        lambda: cluster.gone("orphan"),
        timeout=TOPIC_DELETION_TIMEOUT_SECONDS + 60,
        what="the EventConsumer to be deleted although Kafka is unreachable",
    )
    print(f"\ndeleted after {time.monotonic() - started:.1f}s with Kafka unreachable")
    cluster.wait_event(
        "orphan",
        lambda e: e.startswith("TopicLeftBehind") and topic_name in e,
        "a TopicLeftBehind event naming the topic",
    )


def test_a_topic_another_event_consumer_reads_is_kept(
    cluster: Cluster, stack: Stack, kafka_admin: AdminClient, topic_name: str
) -> None:
    cluster.create(taking_its_topic(cluster, "owner", stack, topic_name))
    cluster.wait_condition("owner", "Ready", "True")
    reader = body(cluster.namespace, "reader", stack, topic_name, replicas={"min": 0, "max": 1})
    del reader["spec"]["topic"]  # reads the topic, does not manage it
    reader["spec"]["mode"] = "stats"
    reader["spec"]["redis"] = {"urlSecretRef": {"name": "cache", "key": "url"}}
    cluster.create(reader)
    cluster.wait_condition("reader", "Ready", "True")
    cluster.delete("owner")
    wait_for(lambda: cluster.gone("owner"), timeout=60, what="owner deleted")
    cluster.wait_event(
        "owner",
        lambda e: e.startswith("TopicKept") and f"{cluster.namespace}/reader" in e,
        "a TopicKept event naming the reader",
    )
    assert topic_partitions(kafka_admin, topic_name) == 3
