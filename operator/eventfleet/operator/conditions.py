"""Status conditions and the phase, pure: what the handlers learned in, status fields out.

Conditions follow the Kubernetes API conventions: `type`, `status` ("True", "False", "Unknown"),
a CamelCase `reason`, a human `message`, `lastTransitionTime` that changes only when the status
does, and the `observedGeneration` they were computed for.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

Status = Literal["True", "False", "Unknown"]


class ConditionType(enum.StrEnum):
    TOPIC_READY = "TopicReady"
    SCHEMA_READY = "SchemaReady"
    DEPLOYMENT_AVAILABLE = "DeploymentAvailable"
    AUTOSCALER_HEALTHY = "AutoscalerHealthy"
    # Not in READY_NEEDS: dead letters are kept in PostgreSQL whether the DLQ topic exists or not.
    DLQ_TOPIC_READY = "DlqTopicReady"
    READY = "Ready"


class Phase(enum.StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    PAUSED = "Paused"


# Reasons that no retry can fix: the user must change the spec (or the other resource).
FATAL_REASONS: Final = frozenset({"SpecInvalid", "ResourceConflict", "MigrationFailed"})
# What Ready needs: the consumers have a topic, tables, and running replicas.
READY_NEEDS: Final = (
    ConditionType.TOPIC_READY,
    ConditionType.SCHEMA_READY,
    ConditionType.DEPLOYMENT_AVAILABLE,
)


@dataclass(frozen=True, slots=True)
class Condition:
    type: ConditionType
    status: Status
    reason: str
    message: str

    @classmethod
    def true(cls, kind: ConditionType, reason: str, message: str = "") -> Condition:
        return cls(kind, "True", reason, message)

    @classmethod
    def false(cls, kind: ConditionType, reason: str, message: str) -> Condition:
        return cls(kind, "False", reason, message)


def merge_conditions(
    existing: Sequence[Mapping[str, Any]],
    updates: Iterable[Condition],
    *,
    now: str,
    generation: int,
) -> list[dict[str, Any]]:
    """The status.conditions list after `updates`; conditions not updated are kept as they are."""
    merged: dict[str, dict[str, Any]] = {str(c["type"]): dict(c) for c in existing if "type" in c}
    for update in updates:
        before = merged.get(update.type.value)
        changed = before is None or before.get("status") != update.status
        merged[update.type.value] = {
            "type": update.type.value,
            "status": update.status,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": now
            if changed or before is None
            else before.get("lastTransitionTime", now),
            "observedGeneration": generation,
        }
    order = [t.value for t in ConditionType]
    return sorted(
        merged.values(),
        key=lambda c: (order.index(c["type"]) if c["type"] in order else len(order), c["type"]),
    )


_NOT_READY_REASONS: Final = {
    ConditionType.TOPIC_READY: "TopicNotReady",
    ConditionType.SCHEMA_READY: "SchemaNotReady",
    ConditionType.DEPLOYMENT_AVAILABLE: "DeploymentUnavailable",
}


def ready_condition(conditions: Sequence[Mapping[str, Any]]) -> Condition:
    """Ready summarises the three conditions the consumers need; it names the first missing."""
    by_type = {c.get("type"): c for c in conditions}
    for needed in READY_NEEDS:
        found = by_type.get(needed.value)
        if found is None or found.get("status") != "True":
            detail = (found or {}).get("message") or f"{needed.value} not reported yet"
            return Condition.false(ConditionType.READY, _NOT_READY_REASONS[needed], detail)
    return Condition.true(ConditionType.READY, "AllReady", "topic, schema and Deployment are ready")


def phase_of(conditions: Sequence[Mapping[str, Any]], *, paused: bool) -> Phase:
    """One word for `kubectl get ec`, derived from the conditions (never stored separately)."""
    if paused:
        return Phase.PAUSED
    if any(c.get("status") == "False" and c.get("reason") in FATAL_REASONS for c in conditions):
        return Phase.FAILED
    by_type = {c.get("type"): c for c in conditions}
    needed = [by_type.get(t.value) for t in READY_NEEDS]
    if all(c is not None and c.get("status") == "True" for c in needed):
        autoscaler = by_type.get(ConditionType.AUTOSCALER_HEALTHY.value)
        unhealthy = autoscaler is not None and autoscaler.get("status") == "False"
        return Phase.DEGRADED if unhealthy else Phase.RUNNING
    if all(c is None for c in needed):
        return Phase.PENDING
    deployment = by_type.get(ConditionType.DEPLOYMENT_AVAILABLE.value)
    if deployment is not None and deployment.get("status") == "True":
        return Phase.DEGRADED  # consumers run, but the spec is not (fully) in place
    return Phase.PROVISIONING
