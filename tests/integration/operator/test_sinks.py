"""One writer per sink (a mode's tables in one database), on the real API server with consumers
running: a second EventConsumer of the same mode on the same database is refused, and a renamed
one (deleted, then created under a new name) continues the progress of the old."""

from __future__ import annotations

import contextlib

import psycopg2
import pytest
from kubernetes.client.exceptions import ApiException

from tests.fixtures.pipeline import wait_stored
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import Cluster, body, produce

pytestmark = pytest.mark.usefixtures("operator", "podrunner")


def scalar(dsn: str, query: str) -> object:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(query)
        row = cursor.fetchone()
    connection.close()
    return row[0] if row else None


def test_a_second_writer_of_a_sink_is_refused_with_a_condition_and_an_event(
    cluster: Cluster, stack: Stack, topic_name: str, postgres_dsn: str
) -> None:
    cluster.create(body(cluster.namespace, "first", stack, topic_name))
    cluster.wait_condition("first", "Ready", "True", timeout=60)
    cluster.create(body(cluster.namespace, "second", stack, topic_name + ".b"))
    refused = cluster.wait_condition(
        "second", "SchemaReady", "False", timeout=60, reason="SinkConflict"
    )
    assert f"{cluster.namespace}/first" in refused["message"]
    cluster.wait_event(
        "second", lambda e: e.startswith("SinkConflict:"), what="a SinkConflict Event"
    )
    assert cluster.get("second")["status"]["conditions"]
    assert cluster.condition("second", "Ready")["status"] == "False"
    assert cluster.deployment("second") is None  # no consumers to double-count
    assert scalar(postgres_dsn, "SELECT owner FROM sink_owners WHERE sink = 'logger'") == (
        f"{cluster.namespace}/first"
    )
    cluster.wait_condition("first", "Ready", "True", timeout=10)


def test_a_renamed_event_consumer_continues_the_sinks_progress(
    cluster: Cluster, stack: Stack, topic_name: str, postgres_dsn: str
) -> None:
    cluster.create(body(cluster.namespace, "before", stack, topic_name))
    cluster.wait_condition("before", "Ready", "True", timeout=60)
    produce(stack, topic_name, 2000)
    wait_stored(postgres_dsn, 2000, what="the first events stored")
    cluster.delete("before")
    wait_for(lambda: cluster.deployment("before") is None, timeout=60, what="the old one gone")
    cluster.create(body(cluster.namespace, "after", stack, topic_name))
    cluster.wait_condition("after", "Ready", "True", timeout=90)
    cluster.wait_event(
        "after",
        lambda e: e.startswith("SinkAdopted:") and f"{cluster.namespace}/before" in e,
        what="a SinkAdopted Event",
    )
    produce(stack, topic_name, 500)
    wait_for(
        lambda: scalar(postgres_dsn, "SELECT sum(next_offset) FROM sink_offsets") == 2500,
        timeout=90,
        what="the second events processed",
    )
    assert scalar(postgres_dsn, "SELECT count(*) FROM events") == 2500
    assert scalar(postgres_dsn, "SELECT owner FROM sink_owners WHERE sink = 'logger'") == (
        f"{cluster.namespace}/after"
    )
    assert cluster.get("after")["status"]["consumerGroup"].endswith(".after")


def test_a_topic_deleted_with_its_event_consumer_and_applied_again_is_read_anew(
    cluster: Cluster, stack: Stack, topic_name: str, postgres_dsn: str
) -> None:
    manifest = body(
        cluster.namespace,
        "logger",
        stack,
        topic_name,
        topic={"partitions": 2, "deletionPolicy": "Delete"},
    )
    try:
        cluster.create(manifest)
        cluster.wait_condition("logger", "Ready", "True", timeout=60)
        produce(stack, topic_name, 1500)
        wait_stored(postgres_dsn, 1500, what="the first incarnation's events stored")
        cluster.delete("logger")  # deletionPolicy Delete: the topic goes with it
        wait_for(lambda: cluster.gone("logger"), timeout=60, what="the EventConsumer gone")
        cluster.create(manifest)  # re-applied: a new topic of the same name, offsets from 0 again
        cluster.wait_event(
            "logger", lambda e: e.startswith("TopicRecreated:"), what="a TopicRecreated Event"
        )
        produce(stack, topic_name, 300)  # all at offsets the old incarnation already passed
        wait_stored(postgres_dsn, 1800, what="every event of the new incarnation stored")
        assert scalar(postgres_dsn, "SELECT sum(next_offset) FROM sink_offsets") == 300
    finally:
        # Its finalizer (deletionPolicy Delete) needs the running operator: delete it while it
        # runs, or the namespace would stay Terminating for the tests after this one.
        with contextlib.suppress(ApiException):
            cluster.delete("logger")
        wait_for(lambda: cluster.gone("logger"), timeout=60, what="the EventConsumer gone")
