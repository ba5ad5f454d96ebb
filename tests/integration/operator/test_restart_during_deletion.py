"""An operator killed while a namespace is being deleted, and started again, still finishes that
deletion: the EventConsumer's finalizer goes and the namespace does not stay Terminating.

kopf resumes a delete handler from the progress it keeps in the object's annotations; this
checks it does so in a namespace that was already Terminating when the new process started.
With `--namespace` (a name or a pattern, as the tests' `test-*`) kopf chooses the namespaces to
watch by observing them, which is where a Terminating one was left out."""

from __future__ import annotations

import json
import signal
import time

import pytest
from kubernetes import client

from tests.fixtures.kube import absent
from tests.fixtures.operator import KOPF_SETTLE_SECONDS, operator_process
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import Cluster, created_with_kafka_gone

pytestmark = pytest.mark.usefixtures("eventconsumer_crd")

DELETION_TIMEOUT_SECONDS = 20
PROGRESS_ANNOTATION = "eventfleet.dev/delete-topic"  # kopf's progress of the delete handler


def test_a_namespace_deletion_finishes_after_the_operator_is_killed_and_restarted(
    stack: Stack, kube_api: client.ApiClient, unwatched_namespace: str, topic_name: str
) -> None:
    operator = operator_process(
        stack,
        "operator-restart-during-deletion",
        "--namespace",
        f"{unwatched_namespace}*",  # a pattern, as the session operator's test-*
        "--topic-deletion-timeout",
        str(DELETION_TIMEOUT_SECONDS),
    )
    operator.log.unlink(missing_ok=True)
    operator.start()
    try:
        time.sleep(KOPF_SETTLE_SECONDS)
        cluster = Cluster(kube_api, unwatched_namespace)
        created_with_kafka_gone(cluster, "orphan", stack, topic_name)
        core = client.CoreV1Api(kube_api)
        core.delete_namespace(unwatched_namespace)
        wait_for(
            lambda: PROGRESS_ANNOTATION in cluster.get("orphan")["metadata"].get("annotations", {}),
            timeout=60,
            what="the delete handler to have tried once (Kafka is unreachable)",
        )
        progress = json.loads(cluster.get("orphan")["metadata"]["annotations"][PROGRESS_ANNOTATION])
        print(f"\nkilled with the delete handler's progress at {progress}")
        operator.stop(signal.SIGKILL)
        state = core.read_namespace(unwatched_namespace).status
        assert state is not None
        assert state.phase == "Terminating"

        operator.start()  # a new process: the namespace is already Terminating
        started = time.monotonic()
        wait_for(
            lambda: absent(lambda: core.read_namespace(unwatched_namespace)),
            timeout=DELETION_TIMEOUT_SECONDS + 90,
            what="the namespace to be deleted after the operator's restart",
        )
        print(f"namespace gone {time.monotonic() - started:.1f}s after the restart")
        log = operator.log.read_text(errors="replace")
        # The restarted process let it go by the bounded deletion, naming the topic left behind.
        assert f"orphan TopicLeftBehind: topic {topic_name}" in log
    finally:
        operator.stop()
