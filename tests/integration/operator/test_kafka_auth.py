"""EventConsumers against Kafka's SASL_SSL listener, with credentials only by reference (a
binding Secret): the operator's topic and lag reads and the consumers use them, a rotated
password rolls the consumers and loses nothing, and a missing, malformed or wrong Secret is a
condition and an Event, never a crash loop. The password shows nowhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient
from kubernetes import client

from eventfleet.operator.builders import SECRETS_CHECKSUM_ANNOTATION
from tests.fixtures.operator import LOG_DIR
from tests.fixtures.pipeline import wait_stored
from tests.fixtures.secured_kafka import ScramUser, rotated
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.helpers import rows
from tests.integration.operator.cluster import (
    KAFKA_USER_SECRET,
    Cluster,
    everything_shown,
    produce,
    sasl_body,
)

pytestmark = pytest.mark.usefixtures("operator", "podrunner")


def _checksum(cluster: Cluster) -> str | None:
    deployment = cluster.deployment("logger")
    if deployment is None:
        return None
    annotations = deployment.spec.template.metadata.annotations or {}  # type: ignore[union-attr]
    found = annotations.get(SECRETS_CHECKSUM_ANNOTATION)
    return str(found) if found else None


def test_a_consumer_runs_over_sasl_ssl_and_a_rotated_password_loses_nothing(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    stack: Stack,
    kafka_user: ScramUser,
    kafka_admin: AdminClient,
    topic_name: str,
    postgres_dsn: str,
) -> None:
    cluster.create(sasl_body(cluster.namespace, "logger", stack, topic_name))
    cluster.wait_condition("logger", "Ready", "True", timeout=60)  # topic made over SASL_SSL
    produce(stack, topic_name, 100)
    wait_stored(postgres_dsn, 100, timeout=60, what="100 events stored by the SASL_SSL consumer")
    cluster.wait_condition("logger", "AutoscalerHealthy", "True", timeout=30)  # lag read too
    before = _checksum(cluster)
    assert before is not None

    # Rotation: Kafka takes the new password, the Secret gets it, the consumers roll.
    new = rotated(kafka_user, kafka_admin)
    cluster.put_secret(KAFKA_USER_SECRET, new.binding())
    wait_for(lambda: _checksum(cluster) not in (None, before), timeout=60, what="a new checksum")
    produce(stack, topic_name, 100)
    wait_stored(postgres_dsn, 200, what="200 events after the rotation")
    cluster.wait_condition("logger", "Ready", "True", timeout=30)
    shown = everything_shown(cluster, "logger")
    for password in (kafka_user.password, new.password):
        assert password not in shown
    deployment = client.ApiClient().sanitize_for_serialization(cluster.deployment("logger"))
    environment = json.dumps(deployment["spec"]["template"]["spec"]["containers"][0]["env"])
    assert "EVENTFLEET_KAFKA_AUTH_PATH" in environment
    assert "kafka-user" not in environment  # no variable reads the Kafka Secret


def test_a_missing_or_malformed_secret_is_kafka_auth_invalid_until_fixed(
    cluster: Cluster, stack: Stack, scram_user: ScramUser, topic_name: str
) -> None:
    cluster.create(sasl_body(cluster.namespace, "logger", stack, topic_name))
    found = cluster.wait_condition("logger", "TopicReady", "False", reason="KafkaAuthInvalid")
    assert "kafka-user not found" in found["message"]
    assert cluster.deployment("logger") is None  # no consumers that could only fail

    cluster.put_secret(KAFKA_USER_SECRET, scram_user.binding(password=""))
    cluster.wait_event(
        "logger",
        lambda e: e.startswith("KafkaAuthInvalid") and "missing key password" in e,
        "an Event naming the missing key",
    )
    assert cluster.deployment("logger") is None

    cluster.put_secret(KAFKA_USER_SECRET, scram_user.binding())
    cluster.wait_condition("logger", "Ready", "True", timeout=60)
    assert scram_user.password not in everything_shown(cluster, "logger")

    # Broken again under running consumers: they are left as they are, not rolled onto it.
    running = _checksum(cluster)
    cluster.put_secret(KAFKA_USER_SECRET, scram_user.binding(username=""))
    cluster.wait_condition("logger", "TopicReady", "False", reason="KafkaAuthInvalid", timeout=60)
    time.sleep(6)  # more than a poll (5 s here)
    assert _checksum(cluster) == running


def test_a_wrong_password_is_kafka_auth_failed_not_a_crash_loop(
    cluster: Cluster, stack: Stack, scram_user: ScramUser, topic_name: str
) -> None:
    wrong = "not-the-password-4711"
    cluster.put_secret(KAFKA_USER_SECRET, scram_user.binding(password=wrong))
    cluster.create(sasl_body(cluster.namespace, "logger", stack, topic_name))
    found = cluster.wait_condition(
        "logger", "TopicReady", "False", reason="KafkaAuthFailed", timeout=60
    )
    assert "Authentication failed" in found["message"]
    assert cluster.condition("logger", "Ready")["status"] == "False"
    assert wrong not in everything_shown(cluster, "logger")
    replicas = Path(LOG_DIR / "podrunner.log").read_text(errors="replace")
    assert f"{cluster.namespace}/logger-consumer: replica 0 exited" not in replicas


@pytest.mark.usefixtures("kafka_user")
def test_a_dead_letter_reaches_the_dlq_topic_made_over_sasl_ssl(
    cluster: Cluster, stack: Stack, topic_name: str, dlq_topic: str, postgres_dsn: str
) -> None:
    cluster.create(
        sasl_body(
            cluster.namespace, "logger", stack, topic_name, processing={"dlqTopic": dlq_topic}
        )
    )
    cluster.wait_condition("logger", "DlqTopicReady", "True", reason="Created")
    cluster.wait_condition("logger", "Ready", "True", timeout=60)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
    producer.produce(topic_name, b"{not json")
    producer.flush(10)
    # The consumers' DLQ producer uses the binding Secret too: the copy is in the topic.
    reader = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": f"dlq-reader-{topic_name}",
            "auto.offset.reset": "earliest",
        }
    )
    reader.subscribe([dlq_topic])
    try:
        copy = wait_for(
            lambda: _value_of(reader.poll(1.0)), timeout=60, what="the DLQ topic's copy"
        )
    finally:
        reader.close()
    assert copy == b"{not json"
    assert rows(postgres_dsn, "SELECT count(*) FROM dlq_events")[0][0] == 1


def _value_of(message: Message | None) -> bytes | None:
    if message is None or message.error() is not None:
        return None
    value = message.value()
    return value if isinstance(value, bytes) else None
