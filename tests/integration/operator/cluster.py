"""Small verbs over the API for the operator tests' readability: `Cluster`, the EventConsumer
`body`, producing test events, topic partitions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for

GROUP, VERSION, PLURAL = "eventfleet.dev", "v1alpha1", "eventconsumers"


def body(namespace: str, name: str, stack: Stack, kafka_topic: str, **spec: Any) -> dict[str, Any]:
    full: dict[str, Any] = {
        "mode": "logger",
        "kafka": {"bootstrapServers": stack.kafka_bootstrap, "topic": kafka_topic},
        "topic": {"partitions": 3},
        "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
        "replicas": {"min": 1, "max": 4},
        "autoscaling": {"pollIntervalSeconds": 5},
    }
    full.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EventConsumer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": full,
    }


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
