"""The EventConsumer CRD on the real API server: bad specs refused at `kubectl apply` with a
clear message, defaults filled in, printer columns, status and scale subresources."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.usefixtures("eventconsumer_crd")


def manifest(namespace: str, name: str = "ec", **spec_changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "mode": "stats",
        "kafka": {"bootstrapServers": "127.0.0.1:9092"},
        "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
        "redis": {"urlSecretRef": {"name": "cache", "key": "url"}},
    }
    for key, value in spec_changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return {
        "apiVersion": "eventfleet.dev/v1alpha1",
        "kind": "EventConsumer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def apply(kubectl: Kubectl, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body))


INVALID = [
    ({"mode": None}, "spec.mode: Required value"),
    ({"mode": "archiver"}, 'spec.mode: Unsupported value: "archiver"'),
    ({"redis": None}, "spec.redis is required for modes stats and leaderboard"),
    ({"replicas": {"min": 5, "max": 2}}, "spec.replicas.min must not exceed spec.replicas.max"),
    ({"replicas": {"min": 0, "max": 0}}, "spec.replicas.max: Invalid value: 0"),
    ({"topic": {"partitions": 0}}, "spec.topic.partitions: Invalid value: 0"),
    ({"kafka": {"bootstrapServers": "k:9092", "topic": "bad topic!"}}, "spec.kafka.topic"),
    ({"kafka": {"topic": "t"}}, "spec.kafka.bootstrapServers: Required value"),
    ({"topic": {"deletionPolicy": "Keep"}}, 'spec.topic.deletionPolicy: Unsupported value: "Keep"'),
    (
        {"autoscaling": {"pollIntervalSeconds": 1}},
        "spec.autoscaling.pollIntervalSeconds: Invalid value: 1",
    ),
    ({"autoscaling": {"lagPerReplica": 0}}, "spec.autoscaling.lagPerReplica: Invalid value: 0"),
    (
        {"leaderboard": {"boards": ["kills"]}},
        'spec.leaderboard.boards[0]: Unsupported value: "kills"',
    ),
    ({"postgres": {"dsnSecretRef": {"name": "db"}}}, "spec.postgres.dsnSecretRef.key: Required"),
    ({"processing": {"batchSize": 0}}, "spec.processing.batchSize: Invalid value: 0"),
    (
        {"replicas": {"min": 1, "max": 3, "count": 9}},
        "spec.replicas.count must not exceed spec.replicas.max",
    ),
    ({"paused": "yes"}, "spec.paused: Invalid value"),
    ({"replica": {"min": 1}}, 'unknown field "spec.replica"'),
]


@pytest.mark.parametrize(("changes", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_specs_are_refused_with_the_schema_message(
    kubectl: Kubectl, namespace: str, changes: dict[str, Any], message: str
) -> None:
    result = apply(kubectl, manifest(namespace, **changes))
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr
    assert kubectl("get", "ec", "-n", namespace, "-o", "name").stdout == ""


def test_defaults_are_filled_in_by_the_api_server(kubectl: Kubectl, namespace: str) -> None:
    assert apply(kubectl, manifest(namespace, topic={"partitions": 3})).returncode == 0
    stored = json.loads(kubectl("get", "ec", "ec", "-n", namespace, "-o", "json").stdout)
    spec = stored["spec"]
    assert spec["kafka"]["topic"] == "player.events.raw"
    assert spec["autoscaling"]["lagPerReplica"] == 1000
    assert spec["autoscaling"]["scaleDownStabilizationSeconds"] == 300
    assert spec["replicas"] == {"min": 1, "max": 6}
    assert spec["topic"]["deletionPolicy"] == "Retain"
    assert spec["leaderboard"]["periods"] == ["all_time", "daily", "weekly"]


def test_transition_rules_guard_mode_and_partitions(kubectl: Kubectl, namespace: str) -> None:
    body = manifest(namespace, topic={"partitions": 6})
    assert apply(kubectl, body).returncode == 0
    changed_mode = copy.deepcopy(body)
    changed_mode["spec"]["mode"] = "leaderboard"
    result = apply(kubectl, changed_mode)
    assert result.returncode != 0
    assert "spec.mode is immutable" in result.stderr
    fewer = copy.deepcopy(body)
    fewer["spec"]["topic"]["partitions"] = 3
    result = apply(kubectl, fewer)
    assert result.returncode != 0
    assert "topic partitions can only grow" in result.stderr
    more = copy.deepcopy(body)
    more["spec"]["topic"]["partitions"] = 12
    assert apply(kubectl, more).returncode == 0


def test_short_name_category_columns_and_scale(kubectl: Kubectl, namespace: str) -> None:
    assert apply(kubectl, manifest(namespace, autoscaling={"enabled": False})).returncode == 0
    table = kubectl("get", "ec", "-n", namespace)
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header == ["NAME", "MODE", "TOPIC", "READY", "DESIRED", "LAG", "PHASE", "AGE"]
    assert "ec" in kubectl("get", "eventfleet", "-n", namespace, "-o", "name").stdout

    scaled = kubectl("scale", "ec/ec", "-n", namespace, "--replicas=3")
    assert scaled.returncode == 0, scaled.stderr
    stored = json.loads(kubectl("get", "ec", "ec", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["replicas"]["count"] == 3


def test_status_subresource_keeps_spec_and_status_apart(kubectl: Kubectl, namespace: str) -> None:
    assert apply(kubectl, manifest(namespace)).returncode == 0
    patch = {
        "status": {
            "phase": "Running",
            "readyReplicas": 2,
            "desiredReplicas": 3,
            "lag": {"total": 7},
        }
    }
    result = kubectl(
        "patch",
        "ec",
        "ec",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )
    assert result.returncode == 0, result.stderr
    row = kubectl("get", "ec", "ec", "-n", namespace, "--no-headers").stdout.split()
    assert row[1:7] == ["stats", "player.events.raw", "2", "3", "7", "Running"]
    # A status written through the main resource is ignored.
    kubectl(
        "patch",
        "ec",
        "ec",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Failed"}}),
    )
    stored = json.loads(kubectl("get", "ec", "ec", "-n", namespace, "-o", "json").stdout)
    assert stored["status"]["phase"] == "Running"
