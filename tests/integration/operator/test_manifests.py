"""`kubectl apply -k manifests/` on the real API server: everything is accepted, the operator
runs under least-privilege RBAC, and the samples are valid EventConsumers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from tests.fixtures.stack import REPO

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
OPERATOR = "system:serviceaccount:eventfleet-system:eventfleet-operator"


@pytest.fixture(scope="module")
def installed(kubectl: Kubectl) -> None:
    manifests = str(REPO / "manifests")
    applied = kubectl("apply", "--server-side", "--force-conflicts", "-k", manifests)
    assert applied.returncode == 0, applied.stderr


@pytest.mark.usefixtures("installed")
def test_operator_deployment_runs_two_leader_elected_replicas(kubectl: Kubectl) -> None:
    found = json.loads(
        kubectl(
            "get", "deployment", "eventfleet-operator", "-n", "eventfleet-system", "-o", "json"
        ).stdout
    )
    assert found["spec"]["replicas"] == 2
    assert found["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = found["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "eventfleet-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    args = pod["containers"][0]["args"]
    assert args[:2] == ["operator", "--all-namespaces"]
    assert "--leader-elect" in args
    (namespace_env,) = pod["containers"][0]["env"]
    assert namespace_env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize(
    ("verb", "resource", "expected"),
    [
        ("get", "secrets", "yes"),
        ("list", "secrets", "no"),
        ("watch", "secrets", "no"),
        ("patch", "deployments.apps", "yes"),
        ("delete", "deployments.apps", "no"),
        ("patch", "eventconsumers.eventfleet.dev", "yes"),
        ("patch", "eventconsumers.eventfleet.dev/status", "yes"),
        ("delete", "eventconsumers.eventfleet.dev", "no"),
        ("patch", "poddisruptionbudgets.policy", "yes"),
        ("delete", "poddisruptionbudgets.policy", "yes"),
        ("list", "poddisruptionbudgets.policy", "no"),
        ("create", "events", "yes"),
        ("create", "pods", "no"),
        ("delete", "namespaces", "no"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", "no"),
    ],
)
def test_operator_rbac_is_least_privilege(
    kubectl: Kubectl, verb: str, resource: str, expected: str
) -> None:
    answer = kubectl("auth", "can-i", verb, resource, "--as", OPERATOR, "-n", "default")
    assert answer.stdout.strip() == expected, answer.stderr


@pytest.mark.usefixtures("installed")
def test_samples_are_accepted_by_the_api_server(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "gamemetrics")  # may exist already
    result = kubectl("apply", "--dry-run=server", "-k", str(REPO / "manifests" / "samples"))
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.count("created (server dry run)")
        + result.stdout.count("configured (server dry run)")
        + result.stdout.count("unchanged (server dry run)")
        == 3
    )


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize(
    ("namespace", "expected"), [("eventfleet-system", "yes"), ("default", "no")]
)
def test_the_leader_lease_is_writable_only_in_the_operators_namespace(
    kubectl: Kubectl, namespace: str, expected: str
) -> None:
    answer = kubectl(
        "auth", "can-i", "update", "leases.coordination.k8s.io", "--as", OPERATOR, "-n", namespace
    )
    assert answer.stdout.strip() == expected, answer.stderr
