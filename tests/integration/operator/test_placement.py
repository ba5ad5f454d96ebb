"""spec.podTemplate and the PodDisruptionBudget on the real API server: the built objects are
accepted as built (nothing pruned or refused), and the operator applies and removes the budget."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from eventfleet.operator.builders import Owner, build_deployment
from eventfleet.operator.disruption import build_disruption_budget
from eventfleet.operator.spec import EventConsumerSpec
from tests.fixtures.kube import absent
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import GROUP, PLURAL, VERSION, Cluster, body

POD_TEMPLATE: dict[str, Any] = {
    "nodeSelector": {"pool": "events"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "events", "effect": "NoSchedule"}
    ],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"team": "data"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "priorityClassName": "events-high",
    "imagePullSecrets": [{"name": "registry"}],
    "serviceAccountName": "consumers",
    "podLabels": {"team": "data"},
    "podAnnotations": {"sidecar.istio.io/inject": "false"},
    "securityContext": {"runAsUser": 10001, "fsGroup": 10001},
    "containerSecurityContext": {"runAsUser": 10001},
    "envFrom": [{"configMapRef": {"name": "tuning", "optional": True}}],
}


def _apply(api: client.ApiClient, kind: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply, as the operator does it; the stored object as a dict."""
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    patch = (
        client.AppsV1Api(api).patch_namespaced_deployment
        if kind == "Deployment"
        else client.PolicyV1Api(api).patch_namespaced_pod_disruption_budget
    )
    stored = patch(
        name,
        namespace,
        manifest,
        field_manager="test",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    result: dict[str, Any] = api.sanitize_for_serialization(stored)
    return result


@pytest.mark.usefixtures("eventconsumer_crd")
def test_the_built_objects_are_accepted_as_built(
    kube_api: client.ApiClient, namespace: str, stack: Stack
) -> None:
    manifest = body(namespace, "placed", stack, "t", podTemplate=POD_TEMPLATE)
    # A real owner, or the garbage collector would delete what is applied below.
    created = client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest
    )
    # The API server's defaults (what the operator reads back) and the pydantic model agree.
    spec = EventConsumerSpec.model_validate(created["spec"])  # type: ignore[index]
    assert spec.pod_template.node_selector == {"pool": "events"}
    owner = Owner("placed", namespace, created["metadata"]["uid"])  # type: ignore[index]
    built = build_deployment(owner, spec, replicas=1, image="eventfleet:0.1.0", group="g")
    applied = _apply(kube_api, "Deployment", built)
    pod = applied["spec"]["template"]["spec"]
    wanted = built["spec"]["template"]["spec"]
    for field in (
        "nodeSelector",
        "tolerations",
        "affinity",
        "topologySpreadConstraints",
        "priorityClassName",
        "imagePullSecrets",
        "serviceAccountName",
    ):
        assert pod[field] == wanted[field], field
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "tuning", "optional": True}}
    ]
    labels = applied["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "data"

    budget = build_disruption_budget(owner, spec)
    assert budget is not None
    found = _apply(kube_api, "PodDisruptionBudget", budget)
    assert found["spec"]["maxUnavailable"] == 1
    assert found["spec"]["selector"] == applied["spec"]["selector"]


def _read(cluster: Cluster, kind: str, name: str) -> dict[str, Any]:
    api = cluster.apps.api_client
    read = (
        cluster.apps.read_namespaced_deployment
        if kind == "Deployment"
        else client.PolicyV1Api(api).read_namespaced_pod_disruption_budget
    )
    found = read(name, cluster.namespace)
    result: dict[str, Any] = api.sanitize_for_serialization(found)
    return result


@pytest.mark.usefixtures("operator", "podrunner")
def test_the_operator_applies_the_budget_and_removes_it_when_turned_off(
    cluster: Cluster, stack: Stack, topic_name: str
) -> None:
    template = {"podLabels": {"team": "data"}, "nodeSelector": {"pool": "events"}}
    cluster.create(body(cluster.namespace, "logger", stack, topic_name, podTemplate=template))
    cluster.wait_condition("logger", "Ready", "True", timeout=60)
    budget = _read(cluster, "PodDisruptionBudget", "logger-consumer")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["metadata"]["ownerReferences"][0]["name"] == "logger"
    pod = _read(cluster, "Deployment", "logger-consumer")["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"pool": "events"}
    assert pod["metadata"]["labels"]["team"] == "data"

    cluster.patch("logger", {"podDisruptionBudget": {"maxUnavailable": 2}})

    def budget_allows(count: int) -> bool:
        found = _read(cluster, "PodDisruptionBudget", "logger-consumer")
        return bool(found["spec"]["maxUnavailable"] == count)

    wait_for(lambda: budget_allows(2), timeout=30, what="the budget follows the spec")
    cluster.patch("logger", {"podDisruptionBudget": {"enabled": False}})
    wait_for(
        lambda: absent(lambda: _read(cluster, "PodDisruptionBudget", "logger-consumer")),
        timeout=30,
        what="the budget deleted",
    )
    cluster.wait_event("logger", lambda e: e.startswith("DisruptionBudgetDeleted"), "an Event")
