"""The whole system as a user runs it: the operator reconciles three EventConsumers into a topic,
schemas and Deployments (run by the pod runner), the gateway takes events over HTTP, the
consumers write PostgreSQL and Redis, the autoscaler follows the backlog. Then the results are
checked against an independent computation from the events that were sent, after a consumer
process was killed in the middle of the load."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kubernetes import client

from tests.fixtures.net import free_port
from tests.fixtures.operator import LOG_DIR, Process
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.expected import (
    expected_boards,
    expected_stats,
    redis_boards,
    redis_stats,
    stored_boards,
    stored_stats,
)
from tests.integration.consumer.helpers import generate_events, rows

GROUP, VERSION, PLURAL = "eventfleet.dev", "v1alpha1", "eventconsumers"
STATS_DB, BOARDS_DB = 8, 9  # this test's own Redis dbs (the demo uses 0 and 1)
EVENTS = 6000
MALFORMED = [
    b"{broken",
    b"\xff\xfe",
    b"[1, 2]",
    b'{"event_type": "x"}',
    json.dumps(
        {
            "event_type": "player_level_up",
            "player_id": "p1",
            "game_id": "game1",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {"level": 0},
        }
    ).encode(),
]

pytestmark = pytest.mark.usefixtures("operator", "podrunner")


@pytest.fixture
def pipeline_redis(stack: Stack) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    base = stack.redis_url.rsplit("/", 1)[0]
    dbs = (
        redis.Redis.from_url(f"{base}/{STATS_DB}", decode_responses=True),
        redis.Redis.from_url(f"{base}/{BOARDS_DB}", decode_responses=True),
    )
    for db in dbs:
        db.flushdb()
    yield dbs
    for db in dbs:
        db.flushdb()
        db.close()


@pytest.fixture
def topic(kafka_admin: AdminClient) -> Iterator[str]:
    name = f"e2e.{uuid.uuid4().hex[:10]}"
    yield name
    for future in kafka_admin.delete_topics([name], operation_timeout=30).values():
        with contextlib.suppress(Exception):  # absent if the test failed early
            future.result(timeout=30)


def consumer_manifest(
    name: str, mode: str, stack: Stack, kafka_topic: str, **spec: Any
) -> dict[str, Any]:
    full: dict[str, Any] = {
        "mode": mode,
        "kafka": {"bootstrapServers": stack.kafka_bootstrap, "topic": kafka_topic},
        "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
        "replicas": {"min": 1, "max": 3},
        "autoscaling": {
            "pollIntervalSeconds": 5,
            "lagPerReplica": 300,
            "scaleDownStabilizationSeconds": 15,
            "maxScaleDownStep": 3,
        },
        "processing": {"batchSize": 500, "batchTimeoutMs": 50},
    }
    if mode != "logger":
        full["redis"] = {
            "urlSecretRef": {"name": "cache", "key": "url"},
            "statsDb": STATS_DB,
            "leaderboardDb": BOARDS_DB,
        }
    full.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EventConsumer",
        "metadata": {"name": name},
        "spec": full,
    }


def ready(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    found: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in found.get("status", {}).get("conditions", [])
    )


def status(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    found: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    result: dict[str, Any] = found.get("status", {})
    return result


def post_batch(url: str, events: list[dict[str, Any]], *, single: bool = False) -> list[str]:
    """POST `events` as one batch, or (`single`) the one event alone; returns the ids."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{url}/api/v1/events" if single else f"{url}/api/v1/events/batch",
        data=json.dumps(events[0] if single else events).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        assert answer.status == 202
        reply = json.loads(answer.read())
    assert reply["accepted"] == len(events), reply
    ids: list[str] = reply["event_ids"]
    return ids


def replica_pid(namespace: str, deployment: str) -> int:
    """The pid of a running consumer replica, from the pod runner's log."""
    pattern = re.compile(
        rf"{re.escape(namespace)}/{re.escape(deployment)}: replica \d+ started "
        r"\(pid (\d+)"
    )
    found = pattern.findall((LOG_DIR / "podrunner.log").read_text())
    assert found, f"no replica of {deployment} started yet"
    return int(found[-1])


def send_through_gateway(
    stack: Stack, topic: str, namespace: str, events: list[dict[str, Any]]
) -> list[str]:
    """POST the events in batches through a real gateway; half-way, kill -9 a stats consumer
    (the pod runner restarts it); then retry every 15th event with its id, as a client whose
    answer timed out would, 100 alone and the rest in batches, while the consumers scale.
    Returns the event ids the gateway answered with for the events (each once)."""
    port = free_port()
    gateway = Process(
        f"gateway-{namespace}",
        [
            str(Path(sys.executable).parent / "eventfleet"),
            "gateway",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--kafka-bootstrap",
            stack.kafka_bootstrap,
            "--topic",
            topic,
        ],
        {**os.environ},
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )
    gateway.start()
    url = f"http://127.0.0.1:{port}"
    accepted_ids: list[str] = []
    try:
        half = len(events) // 2
        for start in range(0, half, 200):
            accepted_ids += post_batch(url, events[start : min(start + 200, half)])
        # A consumer dies mid-load (kill -9, no goodbye); the pod runner restarts it.
        os.kill(replica_pid(namespace, "stats-consumer"), signal.SIGKILL)
        for start in range(half, len(events), 200):
            accepted_ids += post_batch(url, events[start : start + 200])
        retried = [
            {**event, "event_id": event_id}
            for event, event_id in zip(events, accepted_ids, strict=True)
        ][::15]
        for event in retried[:100]:
            assert post_batch(url, [event], single=True) == [event["event_id"]]
        for start in range(100, len(retried), 100):
            chunk = retried[start : start + 100]
            assert post_batch(url, chunk) == [e["event_id"] for e in chunk]
    finally:
        gateway.stop()
    return accepted_ids


def test_the_whole_pipeline_is_exact_and_scales(  # noqa: PLR0917 - fixtures
    stack: Stack,
    kube_api: client.ApiClient,
    namespace: str,
    postgres_dsn: str,
    topic: str,
    pipeline_redis: tuple[redis.Redis, redis.Redis],
) -> None:
    core, custom = client.CoreV1Api(kube_api), client.CustomObjectsApi(kube_api)
    for name, key, value in (("db", "dsn", postgres_dsn), ("cache", "url", stack.redis_url)):
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=name),
                data={key: base64.b64encode(value.encode()).decode()},
            ),
        )
    manifests = [
        consumer_manifest("logger", "logger", stack, topic, topic={"partitions": 3}),
        consumer_manifest("stats", "stats", stack, topic),
        # Starting at zero replicas: the backlog must wake it (activation, scale from zero).
        consumer_manifest(
            "leaderboard", "leaderboard", stack, topic, replicas={"min": 0, "max": 3}
        ),
    ]
    for manifest in manifests:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    names = [m["metadata"]["name"] for m in manifests]
    wait_for(
        lambda: all(ready(custom, namespace, n) for n in names),
        timeout=90,
        what="the three EventConsumers to be Ready",
    )

    events = generate_events(EVENTS, seed=11, players=60, games=3)
    accepted_ids = send_through_gateway(stack, topic, namespace, events)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
    for index, raw in enumerate(MALFORMED):
        producer.produce(topic, key=f"bad-{index}", value=raw)
    assert producer.flush(30) == 0

    sent_at = datetime.now(UTC)

    def drained() -> bool:
        """Lag 0 in a measurement taken after the last event was produced."""
        for name in names:
            lag = status(custom, namespace, name).get("lag", {})
            measured = lag.get("measuredAt")
            if lag.get("total") != 0 or not measured:
                return False
            if datetime.fromisoformat(measured.replace("Z", "+00:00")) <= sent_at:
                return False
        return True

    wait_for(drained, timeout=180, what="every consumer group to reach lag 0")

    # Every accepted event exactly once; the ids are the ones the gateway answered with.
    stored = rows(postgres_dsn, "SELECT event_id::text FROM events")
    assert len(stored) == EVENTS
    assert sorted(r[0] for r in stored) == sorted(accepted_ids)
    # Statistics and leaderboards equal an independent computation; Redis equals PostgreSQL.
    sent = [
        {**event, "event_id": event_id}
        for event, event_id in zip(events, accepted_ids, strict=True)
    ]
    stats_db, boards_db = pipeline_redis
    assert stored_stats(postgres_dsn) == expected_stats(sent)
    wait_for(
        lambda: redis_stats(stats_db) == stored_stats(postgres_dsn),
        timeout=30,
        what="Redis statistics to equal PostgreSQL's",
    )
    assert stored_boards(postgres_dsn) == expected_boards(sent)
    # 60 players fit in the top 100 that Redis keeps, so Redis holds every board entry.
    wait_for(
        lambda: redis_boards(boards_db) == stored_boards(postgres_dsn),
        timeout=30,
        what="Redis leaderboards to equal PostgreSQL's",
    )
    # Malformed records: in the dead-letter table once per consumer group, reasons kept.
    dlq = rows(postgres_dsn, "SELECT consumer_group, count(*) FROM dlq_events GROUP BY 1")
    assert {group.rsplit(".", 1)[-1]: count for group, count in dlq} == {
        "logger": len(MALFORMED),
        "stats": len(MALFORMED),
        "leaderboard": len(MALFORMED),
    }

    # The autoscaler woke the leaderboard from zero and put it back to sleep afterwards.
    leaderboard = status(custom, namespace, "leaderboard")
    wait_for(
        lambda: status(custom, namespace, "leaderboard").get("desiredReplicas") == 0,
        timeout=60,
        what="the leaderboard consumer to scale back to zero",
    )
    reasons = [
        e.reason
        for e in core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=leaderboard"
        ).items
    ]
    assert "ScaledUp" in reasons
    assert "ScaledDown" in reasons
    for name in names:
        assert ready(custom, namespace, name), status(custom, namespace, name)
    assert leaderboard["consumerGroup"] == f"eventfleet.{namespace}.leaderboard"
    # The kill really happened (to whichever replica was newest), and the totals above are exact.
    killed = re.findall(
        rf"{re.escape(namespace)}/stats-consumer: replica \d+ exited with -9",
        (LOG_DIR / "podrunner.log").read_text(),
    )
    assert killed
