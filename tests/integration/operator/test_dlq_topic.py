"""processing.dlqTopic against the real Kafka and API server: created beside a managed topic
(and kept when the EventConsumer and its topic go), only checked where topics are not managed."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import Cluster, body, topic_partitions

pytestmark = pytest.mark.usefixtures("operator", "podrunner")


def test_the_dlq_topic_is_created_beside_a_managed_topic_and_kept_on_deletion(
    cluster: Cluster, stack: Stack, kafka_admin: AdminClient, topic_name: str, dlq_topic: str
) -> None:
    assert topic_partitions(kafka_admin, dlq_topic) == 0
    cluster.create(
        body(
            cluster.namespace,
            "dlq-managed",
            stack,
            topic_name,
            topic={"partitions": 3, "deletionPolicy": "Delete"},
            processing={"dlqTopic": dlq_topic},
        )
    )
    condition = cluster.wait_condition("dlq-managed", "DlqTopicReady", "True", reason="Created")
    assert dlq_topic in condition["message"]
    assert topic_partitions(kafka_admin, dlq_topic) == 1
    cluster.wait_event(
        "dlq-managed",
        lambda e: e.startswith(f"DlqTopicCreated: created DLQ topic {dlq_topic}"),
        "DlqTopicCreated event",
    )

    cluster.delete("dlq-managed")
    wait_for(lambda: cluster.gone("dlq-managed"), timeout=60, what="deleted")
    assert topic_partitions(kafka_admin, topic_name) == 0  # deletionPolicy Delete: gone
    assert topic_partitions(kafka_admin, dlq_topic) == 1  # the dead letters' copy is kept


def test_a_missing_dlq_topic_is_reported_where_topics_are_not_managed(
    cluster: Cluster, stack: Stack, kafka_admin: AdminClient, topic_name: str, dlq_topic: str
) -> None:
    kafka_admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(timeout=30)
    manifest = body(cluster.namespace, "dlq-external", stack, topic_name)
    del manifest["spec"]["topic"]  # someone else manages the topics
    manifest["spec"]["processing"] = {"dlqTopic": dlq_topic}
    cluster.create(manifest)

    missing = cluster.wait_condition(
        "dlq-external", "DlqTopicReady", "False", reason="DlqTopicMissing"
    )
    assert dlq_topic in missing["message"]
    cluster.wait_event(
        "dlq-external",
        lambda e: e.startswith(f"DlqTopicMissing: DLQ topic {dlq_topic} does not exist"),
        "DlqTopicMissing event",
    )
    # The consumers run meanwhile: PostgreSQL keeps every dead letter.
    cluster.wait_condition("dlq-external", "Ready", "True", timeout=90)
    assert topic_partitions(kafka_admin, dlq_topic) == 0  # checked, never created

    kafka_admin.create_topics([NewTopic(dlq_topic, 2, 1)])[dlq_topic].result(timeout=30)
    cluster.wait_condition("dlq-external", "DlqTopicReady", "True", reason="Exists", timeout=60)
    assert topic_partitions(kafka_admin, dlq_topic) == 2  # left as it was made
