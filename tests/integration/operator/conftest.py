"""The operator tests' fixtures: a consumer namespace with the samples' Secrets, a topic name
(and a DLQ topic name) of the test's own, the `Cluster` verbs over it, a SCRAM user's binding in
its Secret `kafka-user`, and `kubectl eventfleet`."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from kubernetes import client

from tests.fixtures.secured_kafka import ScramUser
from tests.fixtures.stack import Stack
from tests.integration.operator.cluster import KAFKA_USER_SECRET, Cluster, Plugin


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
def dlq_topic(kafka_admin: AdminClient, topic_name: str) -> Iterator[str]:
    """The DLQ topic name beside `topic_name`; the topic is deleted afterwards if it exists."""
    name = f"{topic_name}.dlq"
    yield name
    for future in kafka_admin.delete_topics([name], operation_timeout=30).values():
        with contextlib.suppress(Exception):  # the topic may never have been created
            future.result(timeout=30)


@pytest.fixture
def unwatched_namespace(kube_api: client.ApiClient, postgres_dsn: str) -> Iterator[str]:
    """A namespace the session's operator does not watch (it watches test-*), with the Secret
    db/dsn, for tests that run operators of their own; deleted afterwards unless the test did."""
    name = f"own-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_secret(
        name,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="db"),
            data={"dsn": base64.b64encode(postgres_dsn.encode()).decode()},
        ),
    )
    yield name
    with contextlib.suppress(client.ApiException):  # already gone when the test deleted it
        core.delete_namespace(name)


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


@pytest.fixture
def kafka_user(cluster: Cluster, scram_user: ScramUser) -> ScramUser:
    """The test's SCRAM user, its binding in the Secret that `sasl_body` references."""
    cluster.put_secret(KAFKA_USER_SECRET, scram_user.binding())
    return scram_user


@pytest.fixture
def plugin(stack: Stack, kubeconfig: str) -> Plugin:
    """`kubectl eventfleet ARGS`, kubectl finding the plugin on the PATH (the virtualenv's bin)."""
    environment = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [stack.kubectl, "eventfleet", *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run
