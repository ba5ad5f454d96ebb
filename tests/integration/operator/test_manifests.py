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
    first = kubectl("apply", "--server-side", "--force-conflicts", "-k", manifests)
    if first.returncode != 0:
        # Custom resources in the same apply as their CRD: the second pass finds the kind.
        assert "no matches for kind" in first.stderr, first.stderr
        kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/clusterkopfpeerings.kopf.dev",
        )
        again = kubectl("apply", "--server-side", "--force-conflicts", "-k", manifests)
        assert again.returncode == 0, again.stderr


@pytest.mark.usefixtures("installed")
def test_operator_deployment_uses_recreate_and_its_service_account(kubectl: Kubectl) -> None:
    found = json.loads(
        kubectl(
            "get", "deployment", "eventfleet-operator", "-n", "eventfleet-system", "-o", "json"
        ).stdout
    )
    assert found["spec"]["strategy"]["type"] == "Recreate"
    pod = found["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "eventfleet-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    args = pod["containers"][0]["args"]
    assert args[:2] == ["operator", "--all-namespaces"]
    assert "--peering" in args


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
