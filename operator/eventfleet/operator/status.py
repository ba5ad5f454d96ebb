"""An EventConsumer's status fields, pure: what a writer learned in, the status patch out.

The three writers (reconcile, the autoscaling loop, Deployment events) build their patch here and
hand it to kube.update_consumer_status, which applies it to a freshly read status. The conditions
themselves, and how Ready and the phase follow from them, are in conditions.py. Nothing here does
I/O; only `status_patch` reads the clock (for the conditions' lastTransitionTime).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from eventfleet.operator.conditions import (
    Condition,
    ConditionType,
    merge_conditions,
    phase_of,
    ready_condition,
)
from eventfleet.operator.scaling import LagReading, Recommendation, ScalingDecision
from eventfleet.operator.spec import EventConsumerSpec


def status_patch(
    existing: Mapping[str, Any],
    updates: Sequence[Condition],
    *,
    generation: int | None,
    paused: bool,
    extra: Mapping[str, Any] | None = None,
    ready: Condition | None = None,
) -> dict[str, Any]:
    """The status fields after merging `updates`: conditions, Ready (derived unless given),
    phase, extras."""
    gen = generation if generation is not None else existing.get("observedGeneration", 0)
    merged = merge_conditions(
        existing.get("conditions") or [], updates, now=_transition_time(), generation=gen
    )
    merged = merge_conditions(
        merged, [ready or ready_condition(merged)], now=_transition_time(), generation=gen
    )
    patch: dict[str, Any] = {
        "conditions": merged,
        "phase": phase_of(merged, paused=paused).value,
    }
    if generation is not None:
        patch["observedGeneration"] = generation
    if extra:
        patch.update(extra)
    return patch


def _transition_time() -> str:
    """Now, to the second: the precision of the Kubernetes API's own timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def only_if_changed(status: Mapping[str, Any], update: dict[str, Any]) -> dict[str, Any] | None:
    """`update`, or None when it changes nothing (transition times aside): skipping such writes
    means fewer watch events."""

    def essence(conditions: Any) -> list[tuple[Any, ...]]:
        return sorted(
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in conditions or []
        )

    same = all(status.get(k) == v for k, v in update.items() if k != "conditions") and essence(
        status.get("conditions")
    ) == essence(update.get("conditions"))
    return None if same else update


def changed_beyond_the_time(status: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
    """Whether `update` changes more than the times of a measurement: lag.measuredAt and the
    recommendations' times are left out, as are the conditions' transition times. A poll that
    found the same lag and decided the same as the last one has nothing else to report."""

    def timeless(fields: Mapping[str, Any]) -> dict[str, Any]:
        found = dict(fields)
        if isinstance(found.get("lag"), Mapping):
            found["lag"] = {k: v for k, v in found["lag"].items() if k != "measuredAt"}
        if isinstance(found.get("recommendations"), list):
            found["recommendations"] = [
                r.get("replicas") if isinstance(r, Mapping) else r for r in found["recommendations"]
            ]
        return found

    return only_if_changed(timeless(status), timeless(update)) is not None


# ---------------------------------------------------------------------------------------------
# The owned Deployment


def replica_counts(deployment: Mapping[str, Any]) -> dict[str, int]:
    """status.replicas and status.readyReplicas, as the Deployment reports them."""
    found = deployment.get("status") or {}
    return {
        "replicas": int(found.get("replicas") or 0),
        "readyReplicas": int(found.get("readyReplicas") or 0),
    }


def deployment_condition(deployment: Mapping[str, Any]) -> Condition:
    spec_replicas = deployment.get("spec", {}).get("replicas", 0) or 0
    status = deployment.get("status") or {}
    available = status.get("availableReplicas", 0) or 0
    name = deployment.get("metadata", {}).get("name", "")
    if spec_replicas == 0:
        return Condition.true(
            ConditionType.DEPLOYMENT_AVAILABLE,
            "ScaledToZero",
            f"Deployment {name} is scaled to zero (no lag)",
        )
    if available >= 1:
        return Condition.true(
            ConditionType.DEPLOYMENT_AVAILABLE,
            "Available",
            f"{available}/{spec_replicas} replicas available",
        )
    return Condition.false(
        ConditionType.DEPLOYMENT_AVAILABLE,
        "Progressing",
        f"0/{spec_replicas} replicas available yet",
    )


# ---------------------------------------------------------------------------------------------
# What the autoscaling loop reports after a poll


def autoscaler_condition(spec: EventConsumerSpec, decision: ScalingDecision) -> Condition:
    kind = ConditionType.AUTOSCALER_HEALTHY
    if not decision.healthy:
        return Condition.false(kind, "LagUnavailable", decision.reason)
    if spec.paused:
        return Condition.true(kind, "Paused", decision.reason)
    if not spec.autoscaling.enabled:
        return Condition.true(kind, "Disabled", decision.reason)
    return Condition.true(kind, "Measuring", decision.reason)


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC, to the microsecond: the recommendation times are read back
    (scaling.history_from_status) to place them in the stabilization windows."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def recommendations_field(history: Iterable[Recommendation]) -> list[dict[str, Any]]:
    """status.recommendations: the history the next decision starts from."""
    return [{"time": timestamp(r.time), "replicas": r.replicas} for r in history]


def lag_field(reading: LagReading, measured_at: datetime) -> dict[str, Any]:
    """status.lag."""
    return {
        "total": reading.total,
        "partitions": reading.partitions,
        "partitionsWithLag": reading.partitions_with_lag,
        "measuredAt": timestamp(measured_at),
    }


def last_scale_field(at: datetime, current: int, target: int, reason: str) -> dict[str, Any]:
    """status.lastScale."""
    return {"time": timestamp(at), "from": current, "to": target, "reason": reason}
