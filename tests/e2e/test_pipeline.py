"""The whole system as a user runs it, on a real node: eventfleet deployed from `manifests/`
(the operator and the gateway as pods of the image built from the Dockerfile, with their real
ServiceAccounts and RBAC), three EventConsumers reconciled into a topic, schemas and Deployments
that the kubelet runs, events over HTTP into the gateway pod, the consumer pods writing
PostgreSQL and Redis, the autoscaler following the backlog. In the middle of the load a consumer
pod is deleted with no grace period and the logger's image is rolled. Then the results are
checked against an independent computation from the events that were sent."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.fixtures.node import (
    OPERATOR_ACCOUNT,
    SYSTEM_NAMESPACE,
    Kubectl,
    Node,
    deployment_available,
    eventfleet_deployed,
)
from tests.fixtures.pipeline import drained_since, post_events, stored_event_ids, with_ids
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

pytestmark = pytest.mark.usefixtures("eventconsumer_crd")


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
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    """A namespace of its own, outside `test-*`: the other tests' operator (a process, session
    long) watches `test-*`, and only the operator pod deployed here may act on this one."""
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)


@pytest.fixture
def topic(kafka_admin: AdminClient) -> Iterator[str]:
    name = f"e2e.{uuid.uuid4().hex[:10]}"
    yield name
    for future in kafka_admin.delete_topics([name], operation_timeout=30).values():
        with contextlib.suppress(Exception):  # absent if the test failed early
            future.result(timeout=30)


def consumer_manifest(
    name: str, mode: str, node: Node, kafka_topic: str, **spec: Any
) -> dict[str, Any]:
    full: dict[str, Any] = {
        "mode": mode,
        "kafka": {"bootstrapServers": node.kafka_bootstrap, "topic": kafka_topic},
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


@dataclass
class Terminations:
    """Every container end seen on the namespace's pods, from a watch: (pod, exit code)."""

    core: client.CoreV1Api
    namespace: str
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(ApiException, OSError, ValueError):
                for event in watch.Watch().stream(
                    self.core.list_namespaced_pod, self.namespace, timeout_seconds=5
                ):
                    pod = event["object"]
                    for status in pod.status.container_statuses or []:
                        for state in (status.state, status.last_state):
                            ended = state.terminated if state else None
                            if ended is not None:
                                key = (pod.metadata.name, ended.container_id or "")
                                self.seen[key] = ended.exit_code
                    if self.stop.is_set():
                        return


@contextlib.contextmanager
def watching_terminations(core: client.CoreV1Api, namespace: str) -> Iterator[Terminations]:
    terminations = Terminations(core, namespace)
    thread = threading.Thread(target=terminations.run, daemon=True)
    thread.start()
    try:
        yield terminations
    finally:
        terminations.stop.set()
        thread.join(timeout=10)


def pods_of(apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, name: str) -> list[Any]:
    deployment: Any = apps.read_namespaced_deployment(name, namespace)
    selector = deployment.spec.selector.match_labels
    found: list[Any] = core.list_namespaced_pod(
        namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items())
    ).items
    return found


def gateway_url(core: client.CoreV1Api) -> str:
    """The gateway pod's own address: the host routes to the pod subnet over the bridge."""
    pods: list[Any] = core.list_namespaced_pod(
        SYSTEM_NAMESPACE, label_selector="app.kubernetes.io/name=eventfleet-gateway"
    ).items
    ready = [p for p in pods if p.status.pod_ip and p.metadata.deletion_timestamp is None]
    assert ready, "no gateway pod with an address"
    return f"http://{ready[0].status.pod_ip}:8080"


def send_through_gateway(
    url: str, events: list[dict[str, Any]], midway: Callable[[], None]
) -> list[str]:
    """POST the events in batches to the gateway pod; half-way, run `midway` (a consumer pod
    deleted with no grace period, a rollout); then retry every 15th event with its id, as a
    client whose answer timed out would, 100 alone and the rest in batches, while the
    consumers scale. Returns the event ids the gateway answered with (each once)."""
    accepted_ids: list[str] = []
    half = len(events) // 2
    for start in range(0, half, 200):
        accepted_ids += post_events(url, events[start : min(start + 200, half)])
    midway()
    for start in range(half, len(events), 200):
        accepted_ids += post_events(url, events[start : start + 200])
    retried = with_ids(events, accepted_ids)[::15]
    for event in retried[:100]:
        assert post_events(url, [event], single=True) == [event["event_id"]]
    for start in range(100, len(retried), 100):
        chunk = retried[start : start + 100]
        assert post_events(url, chunk) == [e["event_id"] for e in chunk]
    return accepted_ids


def operator_token_client(core: client.CoreV1Api, kube_api: client.ApiClient) -> client.ApiClient:
    """An API client that authenticates as the operator's ServiceAccount (a real token)."""
    answer: Any = core.create_namespaced_service_account_token(
        OPERATOR_ACCOUNT,
        SYSTEM_NAMESPACE,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    token = answer.status.token
    configuration = client.Configuration()
    configuration.host = kube_api.configuration.host
    configuration.ssl_ca_cert = kube_api.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def test_the_whole_pipeline_is_exact_and_scales_on_real_pods(  # noqa: PLR0915, PLR0917 - one story
    stack: Stack,
    node: Node,
    kube_api: client.ApiClient,
    kubectl: Kubectl,
    namespace: str,
    postgres_dsn: str,
    topic: str,
    pipeline_redis: tuple[redis.Redis, redis.Redis],
    tmp_path: Path,
) -> None:
    core, custom = client.CoreV1Api(kube_api), client.CustomObjectsApi(kube_api)
    apps = client.AppsV1Api(kube_api)
    # The pods reach the same PostgreSQL and Redis at the bridge's address.
    for name, key, value in (
        ("db", "dsn", node.from_pod(postgres_dsn)),
        ("cache", "url", node.from_pod(stack.redis_url)),
    ):
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=name),
                data={key: base64.b64encode(value.encode()).decode()},
            ),
        )
    manifests = [
        consumer_manifest("logger", "logger", node, topic, topic={"partitions": 3}),
        consumer_manifest("stats", "stats", node, topic),
        # Starting at zero replicas: the backlog must wake it (activation, scale from zero).
        consumer_manifest("leaderboard", "leaderboard", node, topic, replicas={"min": 0, "max": 3}),
    ]
    names = [m["metadata"]["name"] for m in manifests]
    with (
        eventfleet_deployed(node, kube_api, kubectl, tmp_path, topic, namespace),
        watching_terminations(core, namespace) as terminations,
    ):
        for manifest in manifests:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
        wait_for(
            lambda: all(ready(custom, namespace, n) for n in names),
            timeout=180,
            what="the three EventConsumers to be Ready (consumer pods running)",
        )
        # The gateway is ready once its topic exists (the logger's EventConsumer made it).
        wait_for(
            lambda: deployment_available(apps, "eventfleet-gateway", SYSTEM_NAMESPACE),
            timeout=120,
            what="the gateway pod to be ready",
        )

        # One fixed tag (re-pointed each run) so that runs do not pile up tags in containerd.
        rolled_image = node.tag_image("rollout")
        deleted: list[str] = []

        def midway() -> None:
            # A consumer pod deleted with no grace period (kubectl delete --grace-period=0
            # --force): its process is killed with no goodbye, the ReplicaSet replaces it.
            victim = pods_of(apps, core, namespace, "stats-consumer")[0].metadata.name
            core.delete_namespaced_pod(victim, namespace, grace_period_seconds=0)
            deleted.append(victim)
            # And a rolling update of the logger's image while the load goes on.
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "logger", {"spec": {"image": rolled_image}}
            )

        events = generate_events(EVENTS, seed=11, players=60, games=3)
        accepted_ids = send_through_gateway(gateway_url(core), events, midway)
        producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
        for index, raw in enumerate(MALFORMED):
            producer.produce(topic, key=f"bad-{index}", value=raw)
        assert producer.flush(30) == 0

        sent_at = datetime.now(UTC)

        # Lag 0 in a measurement taken after the last event was produced.
        wait_for(
            lambda: drained_since((status(custom, namespace, n) for n in names), sent_at),
            timeout=240,
            what="every consumer group to reach lag 0",
        )

        # Every accepted event exactly once; the ids are the ones the gateway answered with.
        stored = stored_event_ids(postgres_dsn)
        assert len(stored) == EVENTS
        assert stored == sorted(accepted_ids)
        # Statistics and leaderboards equal an independent computation; Redis equals PostgreSQL.
        sent = with_ids(events, accepted_ids)
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
            timeout=90,
            what="the leaderboard consumer to scale back to zero",
        )
        wait_for(
            lambda: not pods_of(apps, core, namespace, "leaderboard-consumer"),
            timeout=60,
            what="the leaderboard's pods to be gone",
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

        # The rollout finished: every logger pod runs the new image.
        wait_for(
            lambda: (
                {
                    c.image
                    for p in pods_of(apps, core, namespace, "logger-consumer")
                    for c in p.spec.containers
                }
                == {rolled_image}
            ),
            timeout=120,
            what="the logger's pods to run the rolled image",
        )
        # The deleted pod is gone and was replaced.
        stats_pods = [p.metadata.name for p in pods_of(apps, core, namespace, "stats-consumer")]
        assert deleted
        assert deleted[0] not in stats_pods
        assert stats_pods
        # Every consumer that was stopped (scale-down, rollout) ended by itself on SIGTERM,
        # within its grace period: exit 0, never 137 (killed when the grace ran out).
        ended = {pod: code for (pod, _), code in terminations.seen.items() if pod != deleted[0]}
        assert ended, "no consumer pod was seen ending (scale-down, rollout)"
        assert set(ended.values()) == {0}, ended

        # What an admin types works on real pods: logs through the kubelet, describe, get.
        logs = kubectl("logs", "-n", namespace, "deploy/logger-consumer", "--tail=20")
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout.strip()
        described = kubectl("describe", "eventconsumer", "logger", "-n", namespace)
        assert described.returncode == 0, described.stderr
        assert "Ready" in described.stdout
        listed = kubectl("get", "pods", "-n", namespace, "-o", "wide")
        assert "Running" in listed.stdout, listed.stdout

        # The operator works with exactly the manifests' RBAC, and nothing more: its own
        # ServiceAccount's token may read EventConsumers but not list Secrets.
        as_operator = operator_token_client(core, kube_api)
        client.CustomObjectsApi(as_operator).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL
        )
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(as_operator).list_secret_for_all_namespaces()
        assert refused.value.status == 403
