"""The three samples (manifests/samples) against Kafka's SASL_SSL listener, with the Kafka
credentials only by reference: every EventConsumer names a binding Secret in kafka.authSecretRef,
the gateway reads the same binding from a directory. The operator makes the topic and the DLQ
topic and reads lag over SASL_SSL, the consumers (run by the pod runner) store what the gateway
took, and PostgreSQL holds exact totals. The password shows in no Deployment, status, Event or
log."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.fixtures.net import free_port
from tests.fixtures.operator import Process
from tests.fixtures.pipeline import drained_since, post_events, stored_event_ids, with_ids
from tests.fixtures.secured_kafka import ScramUser
from tests.fixtures.stack import REPO, Stack
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.expected import (
    expected_boards,
    expected_stats,
    stored_boards,
    stored_stats,
)
from tests.integration.consumer.helpers import generate_events, rows
from tests.integration.operator.cluster import Cluster, everything_shown, sasl_kafka

pytestmark = pytest.mark.usefixtures("operator", "podrunner")
SAMPLES = REPO / "manifests" / "samples"
NAMES = ("logger", "stats", "leaderboard")
EVENTS = 1500
# This test's own Redis dbs (the e2e has 8 and 9, the consumer tests 12, scratch 15).
STATS_DB, BOARDS_DB = 10, 11


def sample(name: str, cluster: Cluster, stack: Stack, topic: str) -> dict[str, Any]:
    """A sample as shipped, moved to this test's namespace, topic, Secrets and the SASL_SSL
    listener; one or two replicas each (a small machine runs them all)."""
    manifest: dict[str, Any] = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())
    manifest["metadata"]["namespace"] = cluster.namespace
    spec = manifest["spec"]
    spec["kafka"] = sasl_kafka(stack, topic)
    spec["postgres"]["dsnSecretRef"] = {"name": "db", "key": "dsn"}
    if "redis" in spec:
        spec["redis"] = {
            "urlSecretRef": {"name": "cache", "key": "url"},
            "statsDb": STATS_DB,
            "leaderboardDb": BOARDS_DB,
        }
    if spec.get("processing", {}).get("dlqTopic"):
        spec["processing"]["dlqTopic"] = f"{topic}.dlq"
    spec["replicas"] = {"min": 1, "max": 2}
    spec["autoscaling"] = {**spec.get("autoscaling", {}), "pollIntervalSeconds": 5}
    return manifest


def send(binding: Path, topic: str, events: list[dict[str, Any]]) -> tuple[list[str], str]:
    """The events through a gateway whose Kafka (servers and credentials) is the binding
    directory alone; the ids it answered with, and its log."""
    port = free_port()
    gateway = Process(
        f"gateway-secured-{port}",
        [str(Path(sys.executable).parent / "eventfleet"), "gateway", "--host", "127.0.0.1",
         "--port", str(port), "--kafka-auth", str(binding), "--topic", topic],
        {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_GATEWAY_")},
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )  # fmt: skip
    gateway.start()
    try:
        ids: list[str] = []
        for start in range(0, len(events), 250):
            ids += post_events(f"http://127.0.0.1:{port}", events[start : start + 250])
    finally:
        gateway.stop()
    return ids, gateway.log.read_text(errors="replace")


@pytest.mark.usefixtures("dlq_topic")  # the logger's DLQ topic, deleted afterwards
def test_the_three_samples_run_over_sasl_ssl_with_secrets_only_by_reference(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    stack: Stack,
    kafka_user: ScramUser,
    topic_name: str,
    postgres_dsn: str,
    tmp_path: Path,
) -> None:
    for name in NAMES:
        cluster.create(sample(name, cluster, stack, topic_name))
    for name in NAMES:  # topics made, schemas migrated, consumers up: all over SASL_SSL
        cluster.wait_condition(name, "Ready", "True", timeout=120)
    cluster.wait_condition("logger", "DlqTopicReady", "True", timeout=30)

    events = generate_events(EVENTS, seed=17, players=50, games=3)
    ids, gateway_log = send(kafka_user.write(tmp_path / "binding"), topic_name, events)
    sent_at = datetime.now(UTC)

    # Lag 0, read by the operator over SASL_SSL after the last event was sent.
    wait_for(
        lambda: drained_since((cluster.get(n).get("status", {}) for n in NAMES), sent_at),
        timeout=180,
        what="every consumer group at lag 0",
    )

    assert stored_event_ids(postgres_dsn) == sorted(ids)
    sent = with_ids(events, ids)
    assert stored_stats(postgres_dsn) == expected_stats(sent)
    assert stored_boards(postgres_dsn) == expected_boards(sent)
    assert rows(postgres_dsn, "SELECT count(*) FROM dlq_events")[0][0] == 0

    everything = everything_shown(cluster, *NAMES) + gateway_log
    assert kafka_user.password not in everything
    for name in NAMES:
        deployment = client.ApiClient().sanitize_for_serialization(cluster.deployment(name))
        pod = deployment["spec"]["template"]["spec"]
        variables = json.dumps([c.get("env", []) for c in pod["containers"]])
        assert "EVENTFLEET_KAFKA_AUTH_PATH" in variables
        assert "kafka-user" not in variables  # no variable reads the Kafka Secret
        volumes = [v.get("secret", {}).get("secretName") for v in pod.get("volumes", [])]
        assert "kafka-user" in volumes  # a mounted Secret, by reference
