"""The EventConsumer CRD on the real API server: bad specs refused at `kubectl apply` with a
clear message, defaults filled in, printer columns, status and scale subresources."""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from eventfleet.operator import kube
from eventfleet.operator.conditions import Condition, ConditionType
from eventfleet.operator.scaling import LagReading, ScalingPolicy, decide
from eventfleet.operator.spec import parse_spec
from eventfleet.operator.status import (
    lag_field,
    last_scale_field,
    recommendations_field,
    status_patch,
)
from tests.fixtures.kube import CRD_FILE

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
    (
        {"processing": {"dlqTopic": "player.events.raw"}},  # kafka.topic's default
        "spec.processing.dlqTopic must differ from spec.kafka.topic",
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


def integer_fields(schema: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of every integer field of the spec that has a minimum or a maximum."""
    found: list[tuple[str, ...]] = []
    for key, sub in (schema.get("properties") or {}).items():
        if sub.get("type") == "integer" and ("minimum" in sub or "maximum" in sub):
            found.append((*path, key))
        elif sub.get("type") == "object":
            found.extend(integer_fields(sub, (*path, key)))
    return found


def field_schema(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        schema = schema["properties"][key]
    return schema


def legal_extremes() -> list[tuple[str, dict[str, Any]]]:
    """One spec change per bound of every bounded integer field, plus the combinations that make
    the longest recommendation history: the longest windows at the shortest poll."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    cases: list[tuple[str, dict[str, Any]]] = []
    for path in integer_fields(spec_schema):
        bounds = field_schema(spec_schema, path)
        for bound in ("minimum", "maximum"):
            if bound not in bounds:
                continue
            change: dict[str, Any] = {}
            cursor = change
            for key in path[:-1]:
                cursor = cursor.setdefault(key, {})
            cursor[path[-1]] = bounds[bound]
            if path in {("replicas", "min"), ("replicas", "count")} and bound == "maximum":
                change["replicas"]["max"] = bounds[bound]  # neither may exceed max
            cases.append((f"{'.'.join(path)}={bounds[bound]}", change))
    for down in (3600, 86_400):
        cases.append(
            (
                f"scaleDown {down}s polled every 5s",
                {
                    "autoscaling": {
                        "pollIntervalSeconds": 5,
                        "scaleUpStabilizationSeconds": 3600,
                        "scaleDownStabilizationSeconds": down,
                    },
                    "replicas": {"min": 0, "max": 1000},
                    "topic": {"partitions": 10_000},
                },
            )
        )
    return cases


@pytest.fixture
def unwatched_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A namespace no operator of the test run watches (they watch test-*): this test is the
    only writer of the status it checks."""
    name = f"extremes-{uuid.uuid4().hex[:8]}"
    created = kubectl("create", "namespace", name)
    assert created.returncode == 0, created.stderr
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.mark.parametrize(("case", "change"), legal_extremes(), ids=str)
def test_status_is_accepted_for_every_legal_spec(
    kubectl: Kubectl, unwatched_namespace: str, case: str, change: dict[str, Any]
) -> None:
    """The autoscaler's status after the longest window of polls (a lag that never repeats, the
    worst case for the history) is stored by the API server for every spec it accepts."""
    body = manifest(unwatched_namespace, "extreme")
    for key, value in change.items():
        body["spec"][key] = {**body["spec"].get(key, {}), **value}
    applied = apply(kubectl, body)
    assert applied.returncode == 0, f"{case}: {applied.stderr}"

    def stored_object() -> dict[str, Any]:
        found = kubectl("get", "ec", "extreme", "-n", unwatched_namespace, "-o", "json")
        body: dict[str, Any] = json.loads(found.stdout)
        return body

    stored = stored_object()
    spec = parse_spec(stored["spec"])
    policy = ScalingPolicy.from_spec(spec.replicas, spec.autoscaling)
    poll = timedelta(seconds=spec.autoscaling.poll_interval_seconds)
    longest = max(policy.scale_up_window, policy.scale_down_window)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    history: tuple[Any, ...] = ()
    current = spec.replicas.min
    steps = int(longest / poll) + 2
    for step in range(steps):
        total = (step * 7919) % 1_000_003
        reading = LagReading(total, 10_000, min(total, 10_000), uncommitted_partitions=0)
        decision = decide(policy, current, reading, history, start + poll * step)
        history, current = decision.history, decision.replicas
    now = start + poll * steps
    extra = {
        "desiredReplicas": current,
        "recommendations": recommendations_field(history),
        "lag": lag_field(reading, now),
        "lastScale": last_scale_field(now, 0, current, decision.reason),
    }
    condition = Condition.true(ConditionType.AUTOSCALER_HEALTHY, "LagRead", decision.reason)
    kube.update_consumer_status(
        unwatched_namespace,
        "extreme",
        lambda status: status_patch(status, [condition], generation=1, paused=False, extra=extra),
    )
    written = stored_object()
    assert written["status"]["desiredReplicas"] == current, case
    assert len(written["status"]["recommendations"]) == len(history), case
