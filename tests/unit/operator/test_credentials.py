"""Which Kubernetes credentials the operator uses: kubectl's rule, not the client library's."""

from __future__ import annotations

import pytest

from eventfleet.operator.kube import credential_source

POD = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


@pytest.mark.parametrize(
    ("environ", "in_cluster", "expected"),
    [
        # An explicit KUBECONFIG wins even inside a pod (the local stack run from a CI pod).
        ({**POD, "KUBECONFIG": "/stack/kubeconfig"}, True, "kubeconfig"),
        ({"KUBECONFIG": "/stack/kubeconfig"}, False, "kubeconfig"),
        # In a pod without KUBECONFIG: the pod's service account.
        (POD, True, "in-cluster"),
        # A service host without a mounted token, or a token without a service host: not a pod.
        (POD, False, "kubeconfig"),
        ({}, True, "kubeconfig"),
        # An empty KUBECONFIG is unset, as for kubectl.
        ({**POD, "KUBECONFIG": ""}, True, "in-cluster"),
        ({}, False, "kubeconfig"),
    ],
)
def test_credential_source(
    environ: dict[str, str],
    in_cluster: bool,  # noqa: FBT001 - a parametrized value
    expected: str,
) -> None:
    assert credential_source(environ, in_cluster=in_cluster) == expected
