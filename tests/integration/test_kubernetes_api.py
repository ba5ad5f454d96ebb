"""The local Kubernetes API is the real thing: versions, garbage collection of owned objects,
namespace lifecycle, watches, and kopf connecting with the stack's kubeconfig."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Callable
from typing import Any

import kopf
import pytest
from kubernetes import client, watch

from tests.fixtures.kube import absent
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def test_server_and_kubectl_are_the_same_minor_version(kubectl: Kubectl) -> None:
    result = kubectl("version", "-o", "json")
    assert result.returncode == 0, result.stderr
    versions = json.loads(result.stdout)
    server, mine = versions["serverVersion"], versions["clientVersion"]
    assert server["gitVersion"].startswith("v1.34.")
    assert (mine["major"], mine["minor"]) == (server["major"], server["minor"])


def _config_map(namespace: str, name: str, owner: Any = None) -> client.V1ConfigMap:
    references = None
    if owner is not None:
        references = [
            client.V1OwnerReference(
                api_version="v1", kind="ConfigMap", name=owner.metadata.name, uid=owner.metadata.uid
            )
        ]
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace, owner_references=references),
        data={"k": "v"},
    )


def test_garbage_collector_removes_owned_objects(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, _config_map(namespace, "owner"))
    core.create_namespaced_config_map(namespace, _config_map(namespace, "owned", owner))
    core.delete_namespaced_config_map("owner", namespace)

    wait_for(
        lambda: absent(lambda: core.read_namespaced_config_map("owned", namespace)),
        timeout=30,
        what="the garbage collector to delete the owned ConfigMap",
    )


def test_namespace_deletion_finishes(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    name = f"test-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(name, _config_map(name, "inside"))
    core.delete_namespace(name)

    wait_for(
        lambda: absent(lambda: core.read_namespace(name)),
        timeout=60,
        what=f"namespace {name} to finish terminating",
    )


def test_a_watch_receives_the_events(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    seen: list[tuple[str, str]] = []
    watcher = watch.Watch()
    # Watching from a known resourceVersion delivers every change after it, however late the
    # watch connection is made.
    listed = core.list_namespaced_config_map(namespace).metadata
    assert listed is not None
    version = listed.resource_version

    def collect() -> None:
        for event in watcher.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=version,
            timeout_seconds=20,
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if len([name for _, name in seen if name == "watched"]) >= 3:
                watcher.stop()

    thread = threading.Thread(target=collect)
    thread.start()
    core.create_namespaced_config_map(namespace, _config_map(namespace, "watched"))
    core.patch_namespaced_config_map("watched", namespace, {"data": {"k": "changed"}})
    core.delete_namespaced_config_map("watched", namespace)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [t for t, name in seen if name == "watched"] == ["ADDED", "MODIFIED", "DELETED"]


def test_kopf_reacts_to_a_created_object(
    kube_api: client.ApiClient, namespace: str, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", stack.kubeconfig)
    registry = kopf.OperatorRegistry()
    handled: list[str] = []

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The stack's kubeconfig (KUBECONFIG), even where a pod's service account is mounted.
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.create("configmaps", registry=registry)
    def created(name: str | None, **_: Any) -> None:
        handled.append(str(name))

    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=kopf.run,
        kwargs={
            "registry": registry,
            "namespaces": [namespace],
            "standalone": True,
            "stop_flag": stop,
            "ready_flag": ready,
        },
    )
    thread.start()
    try:
        assert ready.wait(30), "kopf did not start"
        core = client.CoreV1Api(kube_api)
        core.create_namespaced_config_map(namespace, _config_map(namespace, "hello-kopf"))
        wait_for(lambda: "hello-kopf" in handled, timeout=30, what="kopf's create handler")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
