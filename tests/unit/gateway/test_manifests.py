"""manifests/gateway agrees with the code: its settings load, its probes and port exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from eventfleet.gateway.settings import load_settings
from tests.unit.gateway.fakes import call, make_gateway

FOLDER = Path(__file__).resolve().parents[3] / "manifests" / "gateway"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((FOLDER / name).read_text(encoding="utf-8"))
    return document


def test_every_file_is_in_the_kustomization() -> None:
    listed = set(load("kustomization.yaml")["resources"])
    assert listed == {p.name for p in FOLDER.glob("*.yaml")} - {"kustomization.yaml"}
    root = yaml.safe_load((FOLDER.parent / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "gateway" in root["resources"]


def test_the_settings_are_valid_gateway_settings() -> None:
    data = load("settings.yaml")["data"]
    settings = load_settings([], data)
    assert settings.ack_mode == "ack"
    assert settings.port == 8080
    for name in data:
        assert name.startswith("EVENTFLEET_GATEWAY_")


def test_probes_port_and_selector_match_the_app() -> None:
    deployment = load("deployment.yaml")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["args"] == ["gateway"]
    assert container["ports"][0]["containerPort"] == 8080
    gateway, _ = make_gateway()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert call(gateway, "GET", path).status == 200, probe
    assert call(gateway, "GET", pod["metadata"]["annotations"]["prometheus.io/path"]).status == 200
    labels = pod["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        load("service.yaml")["spec"]["selector"],
        load("pdb.yaml")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
