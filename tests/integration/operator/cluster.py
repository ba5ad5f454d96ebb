"""Small verbs over the API for the operator tests' readability: `Cluster`, the EventConsumer
`body` (and `sasl_body`, on Kafka's SASL_SSL listener), producing test events, topic partitions,
and everything a user could see of an EventConsumer."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures.kube import absent
from tests.fixtures.operator import LOG_DIR
from tests.fixtures.secured_kafka import secret_data
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for

GROUP, VERSION, PLURAL = "eventfleet.dev", "v1alpha1", "eventconsumers"
# The binding Secret of the Kafka credentials, in the namespace of a test on SASL_SSL.
KAFKA_USER_SECRET = "kafka-user"
# How often the operator measures the lag of the tests' EventConsumers (a test may wait on it).
POLL_SECONDS = 5
# `kubectl eventfleet ARGS` (the fixture `plugin`).
Plugin = Callable[..., subprocess.CompletedProcess[str]]


def body(namespace: str, name: str, stack: Stack, kafka_topic: str, **spec: Any) -> dict[str, Any]:
    full: dict[str, Any] = {
        "mode": "logger",
        "kafka": {"bootstrapServers": stack.kafka_bootstrap, "topic": kafka_topic},
        "topic": {"partitions": 3},
        "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
        "replicas": {"min": 1, "max": 4},
        "autoscaling": {"pollIntervalSeconds": POLL_SECONDS},
    }
    full.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EventConsumer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": full,
    }


def scaled_from_zero(max_replicas: int, lag_per_replica: int, **autoscaling: Any) -> dict[str, Any]:
    """The `replicas` and `autoscaling` of a `body` that the backlog wakes from zero replicas:
    one replica per `lag_per_replica` of lag up to `max_replicas`, measured every POLL_SECONDS;
    `autoscaling` adds to these settings."""
    return {
        "replicas": {"min": 0, "max": max_replicas},
        "autoscaling": {
            "pollIntervalSeconds": POLL_SECONDS,
            "lagPerReplica": lag_per_replica,
            **autoscaling,
        },
    }


def sasl_kafka(stack: Stack, kafka_topic: str) -> dict[str, Any]:
    """An EventConsumer's `kafka` on the SASL_SSL listener, its credentials only by reference."""
    return {
        "bootstrapServers": stack.kafka_sasl_bootstrap,
        "topic": kafka_topic,
        "authSecretRef": {"name": KAFKA_USER_SECRET},
    }


def sasl_body(
    namespace: str, name: str, stack: Stack, kafka_topic: str, **spec: Any
) -> dict[str, Any]:
    """`body` on the SASL_SSL listener (the credentials in the Secret KAFKA_USER_SECRET)."""
    manifest = body(namespace, name, stack, kafka_topic, **spec)
    manifest["spec"]["kafka"] = sasl_kafka(stack, kafka_topic)
    return manifest


class Cluster:
    """Small verbs over the API for readable tests."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, manifest
        )

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return found

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        for found in self.get(name).get("status", {}).get("conditions", []):
            if found["type"] == kind:
                return dict(found)
        return {}

    def wait_condition(
        self, name: str, kind: str, status: str, timeout: float = 60, reason: str | None = None
    ) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            found = self.condition(name, kind)
            ok = found.get("status") == status and (reason is None or found["reason"] == reason)
            return found if ok else None

        result: dict[str, Any] = wait_for(
            matches, timeout=timeout, what=f"{name} {kind}={status} {reason or ''}"
        )
        return result

    def gone(self, name: str) -> bool:
        """Whether the EventConsumer `name` is deleted (any error but a 404 propagates)."""
        return absent(lambda: self.get(name))

    def lag_total(self, name: str) -> int | None:
        """The total lag of the operator's last measurement (None before the first one)."""
        found = self.get(name).get("status", {}).get("lag", {}).get("total")
        return None if found is None else int(found)

    def wait_consumed(self, name: str, timeout: float = 60) -> None:
        """Wait for the operator to measure lag 0 for `name`: what was produced is consumed."""
        wait_for(lambda: self.lag_total(name) == 0, timeout=timeout, what="the events consumed")

    def at_zero_without_lag(self, name: str) -> bool:
        """Lag 0 measured, and the autoscaler's decision zero replicas."""
        status = self.get(name).get("status", {})
        return bool(status.get("lag", {}).get("total") == 0 and status.get("desiredReplicas") == 0)

    def put_secret(self, name: str, entries: Mapping[str, str]) -> None:
        """The Secret `name` with these entries: created, or replaced when it exists."""
        secret = client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=secret_data(entries))
        try:
            self.core.replace_namespaced_secret(name, self.namespace, secret)
        except ApiException as error:
            if error.status != 404:
                raise
            self.core.create_namespaced_secret(self.namespace, secret)

    def deployment(self, name: str) -> client.V1Deployment | None:
        try:
            return self.apps.read_namespaced_deployment(f"{name}-consumer", self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def env_of(self, name: str) -> dict[str, str]:
        deployment = self.deployment(name)
        assert deployment is not None
        assert deployment.spec is not None
        container = deployment.spec.template.spec.containers[0]  # type: ignore[union-attr]
        return {e.name: e.value for e in container.env or [] if e.value is not None}

    def events(self, name: str) -> list[str]:
        found = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return [f"{e.reason}: {e.message}" for e in found.items]

    def wait_event(self, name: str, matches: Callable[[str], bool], what: str) -> str:
        """The first event on `name` that `matches`, waiting for it: the operator posts an
        event right after the change it reports, so a test that saw the change may be early."""

        def found() -> str | None:
            return next((e for e in self.events(name) if matches(e)), None)

        return str(wait_for(found, timeout=15, what=what))


def taking_its_topic(cluster: Cluster, name: str, stack: Stack, kafka_topic: str) -> dict[str, Any]:
    """An EventConsumer whose topic goes with it (deletionPolicy Delete), one replica at most."""
    spec = {
        "topic": {"partitions": 3, "deletionPolicy": "Delete"},
        "replicas": {"min": 0, "max": 1},
    }
    return body(cluster.namespace, name, stack, kafka_topic, **spec)


def created_with_kafka_gone(cluster: Cluster, name: str, stack: Stack, kafka_topic: str) -> None:
    """`taking_its_topic` pointed at an address where no Kafka listens, created, and holding
    its topic-cleanup finalizer: its deletion can never delete the topic."""
    manifest = taking_its_topic(cluster, name, stack, kafka_topic)
    manifest["spec"]["kafka"]["bootstrapServers"] = "127.0.0.1:1"  # nothing listens there
    cluster.create(manifest)
    wait_for(
        lambda: cluster.get(name)["metadata"].get("finalizers"),
        timeout=30,
        what="the topic-cleanup finalizer",
    )


def create_topic_conflict(cluster: Cluster, stack: Stack, kafka_topic: str) -> dict[str, Any]:
    """Two EventConsumers that disagree on one topic: `first` (3 partitions) Ready, then
    `second` (6 partitions) refused. Returns the second one's TopicReady condition."""
    cluster.create(body(cluster.namespace, "first", stack, kafka_topic))
    cluster.wait_condition("first", "Ready", "True")
    cluster.create(body(cluster.namespace, "second", stack, kafka_topic, topic={"partitions": 6}))
    return cluster.wait_condition("second", "TopicReady", "False", reason="ResourceConflict")


def everything_shown(cluster: Cluster, *names: str) -> str:
    """What a user, an admin or a log collector can see of these EventConsumers: their
    Deployments and the EventConsumers (status included), their Events, the operator's and the
    pod runner's logs, and the pods' logs."""
    api = client.ApiClient()
    shown = [
        part
        for name in names
        for part in (
            json.dumps(api.sanitize_for_serialization(cluster.deployment(name))),
            json.dumps(cluster.get(name)),
            "\n".join(cluster.events(name)),
        )
    ]
    shown += [(LOG_DIR / f).read_text(errors="replace") for f in ("operator.log", "podrunner.log")]
    shown += [p.read_text(errors="replace") for p in (LOG_DIR / "pods").glob("*.log")]
    return "\n".join(shown)


def topic_partitions(admin: AdminClient, topic: str) -> int:
    metadata = admin.list_topics(topic, timeout=10).topics.get(topic)
    return 0 if metadata is None or metadata.error is not None else len(metadata.partitions)


def produce(stack: Stack, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "linger.ms": 20})
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for index in range(count):
        player = f"p{index % 97}"
        event = {
            "event_type": "player_login",
            "player_id": player,
            "game_id": "g1",
            "timestamp": stamp,
            "data": {"platform": "pc"},
        }
        producer.produce(topic, key=player, value=json.dumps(event))
        if index % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
