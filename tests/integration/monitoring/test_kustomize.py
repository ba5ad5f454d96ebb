"""kustomize (kubectl's own) builds manifests/monitoring into the monitors, the rules and the
dashboard's ConfigMap, and the main manifests hold none of the Prometheus Operator's kinds."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import yaml

from tests.fixtures.monitoring import DASHBOARD, FOLDER, REPO

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def build(kubectl: Kubectl, folder: str) -> list[dict[str, object]]:
    result = kubectl("kustomize", folder)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_the_monitoring_kustomization_builds(kubectl: Kubectl) -> None:
    built = build(kubectl, str(FOLDER))
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in built)  # type: ignore[index]
    assert kinds == [
        "ConfigMap/eventfleet-dashboard",
        "PodMonitor/eventfleet-consumers",
        "PodMonitor/eventfleet-operator",
        "PrometheusRule/eventfleet",
        "ServiceMonitor/eventfleet-gateway",
    ]
    (config_map,) = [d for d in built if d["kind"] == "ConfigMap"]
    data = config_map["data"]
    assert isinstance(data, dict)
    assert json.loads(data["eventfleet-dashboard.json"]) == json.loads(DASHBOARD.read_text())


def test_the_main_manifests_need_no_prometheus_operator(kubectl: Kubectl) -> None:
    built = build(kubectl, str(REPO / "manifests"))
    groups = {str(d["apiVersion"]).split("/")[0] for d in built}
    assert "monitoring.coreos.com" not in groups
    assert "apps" in groups  # it did build the Deployments
