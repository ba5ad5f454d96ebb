"""An operator killed while a namespace is being deleted, and started again, still finishes that
deletion: the EventConsumer's finalizer goes and the namespace does not stay Terminating.

kopf resumes a delete handler from the progress it keeps in the object's annotations; this
checks it does so in a namespace that was already Terminating when the new process started,
found through a glob pattern (the namespace observer's path, as the tests' `test-*`)."""

from __future__ import annotations

import base64
import json
import signal
import time
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.fixtures.kube import absent
from tests.fixtures.operator import KOPF_SETTLE_SECONDS, operator_process
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import Cluster, body

pytestmark = pytest.mark.usefixtures("eventconsumer_crd")

DELETION_TIMEOUT_SECONDS = 20
PROGRESS_ANNOTATION = "eventfleet.dev/delete-topic"  # kopf's progress of the delete handler


@pytest.fixture
def doomed_namespace(kube_api: client.ApiClient, postgres_dsn: str) -> Iterator[str]:
    """A namespace no other operator watches (the session's watches test-*), with the Secret
    the EventConsumer names; deleted by the test itself."""
    name = f"doomed-{uuid.uuid4().hex[:8]}"
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
    if not absent(lambda: core.read_namespace(name)):
        core.delete_namespace(name)


def test_a_namespace_deletion_finishes_after_the_operator_is_killed_and_restarted(
    stack: Stack, kube_api: client.ApiClient, doomed_namespace: str, topic_name: str
) -> None:
    operator = operator_process(
        stack,
        "operator-restart-during-deletion",
        "--namespace",
        f"{doomed_namespace}*",  # a pattern: kopf finds the namespace by observing namespaces
        "--topic-deletion-timeout",
        str(DELETION_TIMEOUT_SECONDS),
    )
    operator.log.unlink(missing_ok=True)
    operator.start()
    try:
        time.sleep(KOPF_SETTLE_SECONDS)
        cluster = Cluster(kube_api, doomed_namespace)
        manifest = body(
            doomed_namespace,
            "orphan",
            stack,
            topic_name,
            topic={"partitions": 3, "deletionPolicy": "Delete"},
            replicas={"min": 0, "max": 1},
        )
        manifest["spec"]["kafka"]["bootstrapServers"] = "127.0.0.1:1"  # nothing listens there
        cluster.create(manifest)
        wait_for(
            lambda: cluster.get("orphan")["metadata"].get("finalizers"),
            timeout=30,
            what="the topic-cleanup finalizer",
        )
        core = client.CoreV1Api(kube_api)
        core.delete_namespace(doomed_namespace)
        wait_for(
            lambda: PROGRESS_ANNOTATION in cluster.get("orphan")["metadata"].get("annotations", {}),
            timeout=60,
            what="the delete handler to have tried once (Kafka is unreachable)",
        )
        progress = json.loads(cluster.get("orphan")["metadata"]["annotations"][PROGRESS_ANNOTATION])
        print(f"\nkilled with the delete handler's progress at {progress}")
        operator.stop(signal.SIGKILL)
        state = core.read_namespace(doomed_namespace).status
        assert state is not None
        assert state.phase == "Terminating"

        operator.start()  # a new process: the namespace is already Terminating
        started = time.monotonic()
        wait_for(
            lambda: absent(lambda: core.read_namespace(doomed_namespace)),
            timeout=DELETION_TIMEOUT_SECONDS + 90,
            what="the namespace to be deleted after the operator's restart",
        )
        print(f"namespace gone {time.monotonic() - started:.1f}s after the restart")
        log = operator.log.read_text(errors="replace")
        assert "TopicLeftBehind" in log or "left behind" in log or "delete it by hand" in log
    finally:
        operator.stop()
