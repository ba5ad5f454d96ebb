"""The operator tests' fixtures: a consumer namespace with the samples' Secrets, a topic name
of the test's own, and the `Cluster` verbs over it."""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient
from kubernetes import client

from tests.integration.operator.cluster import Cluster


@pytest.fixture
def topic_name(kafka_admin: AdminClient) -> Iterator[str]:
    """A topic name of this test's own; the topic is deleted afterwards if it exists."""
    name = f"test.{uuid.uuid4().hex[:10]}"
    yield name
    futures = kafka_admin.delete_topics([name], operation_timeout=30)
    for future in futures.values():
        with contextlib.suppress(Exception):  # the topic may never have been created
            future.result(timeout=30)


@pytest.fixture
def consumer_ns(
    kube_api: client.ApiClient, namespace: str, postgres_dsn: str, redis_url: str
) -> str:
    """A namespace with the Secrets the samples reference: db/dsn and cache/url."""
    core = client.CoreV1Api(kube_api)
    for name, key, value in (("db", "dsn", postgres_dsn), ("cache", "url", redis_url)):
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=name),
                data={key: base64.b64encode(value.encode()).decode()},
            ),
        )
    return namespace


@pytest.fixture
def cluster(kube_api: client.ApiClient, consumer_ns: str) -> Cluster:
    return Cluster(kube_api, consumer_ns)
