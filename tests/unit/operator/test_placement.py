"""Pod placement and policy (spec.podTemplate) and the PodDisruptionBudget, as built: pure."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from eventfleet.operator.builders import CONSUMER_LABEL, build_deployment
from eventfleet.operator.disruption import build_disruption_budget
from eventfleet.operator.spec import EventConsumerSpec
from tests.unit.operator.test_builders import OWNER, container, spec


def pod(built: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = built["spec"]["template"]
    return found


def build(**pod_template: Any) -> dict[str, Any]:
    return build_deployment(OWNER, spec(podTemplate=pod_template), replicas=1, image="i", group="g")


def test_without_a_pod_template_the_pod_is_as_before() -> None:
    template = pod(build())
    for field in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
        assert field not in template["spec"]
    for field in ("priorityClassName", "imagePullSecrets", "serviceAccountName"):
        assert field not in template["spec"]
    assert "envFrom" not in container(build())
    assert template["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


def test_placement_fields_reach_the_pod_spec() -> None:
    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "events"}]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    }
    template = pod(
        build(
            nodeSelector={"pool": "events"},
            tolerations=tolerations,
            affinity=affinity,
            priorityClassName="high",
            imagePullSecrets=[{"name": "registry"}],
            serviceAccountName="consumers",
        )
    )["spec"]
    assert template["nodeSelector"] == {"pool": "events"}
    assert template["tolerations"] == tolerations
    assert template["affinity"] == affinity
    assert template["priorityClassName"] == "high"
    assert template["imagePullSecrets"] == [{"name": "registry"}]
    assert template["serviceAccountName"] == "consumers"


def test_spread_constraints_default_to_the_consumers_selector() -> None:
    given = [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
        {
            "maxSkew": 2,
            "topologyKey": "host",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"x": "y"}},
        },
    ]
    first, second = pod(build(topologySpreadConstraints=given))["spec"]["topologySpreadConstraints"]
    assert first["labelSelector"] == {"matchLabels": {CONSUMER_LABEL: "stats"}}
    assert first["topologyKey"] == "zone"
    assert second["labelSelector"] == {"matchLabels": {"x": "y"}}


def test_labels_and_annotations_are_added_and_the_operators_own_win() -> None:
    metadata = pod(
        build(
            podLabels={"team": "data", CONSUMER_LABEL: "hijack"},
            podAnnotations={"sidecar.istio.io/inject": "false", "prometheus.io/port": "1"},
        )
    )["metadata"]
    assert metadata["labels"]["team"] == "data"
    assert metadata["labels"][CONSUMER_LABEL] == "stats"  # the selector keeps its pods
    assert metadata["annotations"]["sidecar.istio.io/inject"] == "false"
    assert metadata["annotations"]["prometheus.io/port"] == "8080"


def test_security_contexts_merge_over_the_locked_down_defaults() -> None:
    built = build(
        securityContext={"runAsUser": 10001, "fsGroup": 2000},
        containerSecurityContext={"runAsUser": 10001, "readOnlyRootFilesystem": False},
    )
    assert pod(built)["spec"]["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 10001,
        "fsGroup": 2000,
    }
    main = container(built)["securityContext"]
    assert main["runAsUser"] == 10001
    assert main["readOnlyRootFilesystem"] is False
    assert main["runAsNonRoot"] is True
    assert main["capabilities"] == {"drop": ["ALL"]}


def test_env_from_config_maps_never_overrides_the_settings() -> None:
    main = container(
        build(
            envFrom=[
                {"configMapRef": {"name": "tuning"}},
                {"configMapRef": {"name": "extra", "optional": True}, "prefix": "X_"},
            ]
        )
    )
    assert main["envFrom"] == [
        {"configMapRef": {"name": "tuning", "optional": False}},
        {"configMapRef": {"name": "extra", "optional": True}, "prefix": "X_"},
    ]
    # env wins over envFrom in Kubernetes: every setting the spec decides is in env.
    assert "EVENTFLEET_MODE" in {item["name"] for item in main["env"]}


@pytest.mark.parametrize(
    "bad",
    [
        {"podLabels": {"team": "not a label value"}},
        {"podLabels": {"team": "x" * 64}},
        {"serviceAccountName": "Not_A_Name"},
        {"envFrom": [{"secretRef": {"name": "s"}}]},
        {"imagePullSecrets": [{}]},
    ],
)
def test_bad_pod_templates_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        spec(podTemplate=bad)


def test_a_disruption_budget_by_default_allowing_one_pod_down() -> None:
    budget = build_disruption_budget(OWNER, spec())
    assert budget is not None
    assert budget["apiVersion"] == "policy/v1"
    assert budget["metadata"]["name"] == "stats-consumer"
    assert budget["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert budget["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {CONSUMER_LABEL: "stats"}},
    }
    deployment = build_deployment(OWNER, spec(), replicas=1, image="i", group="g")
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_the_disruption_budget_follows_the_spec() -> None:
    bigger = build_disruption_budget(OWNER, spec(podDisruptionBudget={"maxUnavailable": 3}))
    assert bigger is not None
    assert bigger["spec"]["maxUnavailable"] == 3
    assert build_disruption_budget(OWNER, spec(podDisruptionBudget={"enabled": False})) is None
    with pytest.raises(ValidationError):
        EventConsumerSpec.model_validate(
            {**spec().model_dump(by_alias=True), "podDisruptionBudget": {"maxUnavailable": 0}}
        )
