"""Status fields (pure): the patch, the skipped no-op writes, and what the loop stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eventfleet.operator.conditions import Condition, ConditionType
from eventfleet.operator.scaling import LagReading, Recommendation, history_from_status
from eventfleet.operator.status import (
    changed_beyond_the_time,
    deployment_condition,
    lag_field,
    only_if_changed,
    recommendations_field,
    replica_counts,
    status_patch,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_a_patch_that_changes_nothing_but_transition_times_is_skipped() -> None:
    available = Condition.true(ConditionType.DEPLOYMENT_AVAILABLE, "Available", "1/1")
    first = status_patch({}, [available], generation=3, paused=False, extra={"replicas": 1})
    again = status_patch(first, [available], generation=None, paused=False, extra={"replicas": 1})
    assert only_if_changed(first, again) is None
    moved = status_patch(first, [available], generation=None, paused=False, extra={"replicas": 2})
    assert only_if_changed(first, moved) == moved


def test_deployment_counts_and_condition() -> None:
    deployment = {
        "metadata": {"name": "d"},
        "spec": {"replicas": 3},
        "status": {"replicas": 3, "readyReplicas": 1, "availableReplicas": 1},
    }
    assert replica_counts(deployment) == {"replicas": 3, "readyReplicas": 1}
    assert replica_counts({}) == {"replicas": 0, "readyReplicas": 0}
    assert deployment_condition(deployment).reason == "Available"
    assert deployment_condition({"spec": {"replicas": 0}}).reason == "ScaledToZero"
    assert deployment_condition({"spec": {"replicas": 2}}).status == "False"


def test_stored_recommendations_read_back_to_the_microsecond() -> None:
    history = (Recommendation(NOW - timedelta(microseconds=1500), 2), Recommendation(NOW, 3))
    assert history_from_status(recommendations_field(history)) == history


def test_a_poll_that_found_the_same_changes_nothing_beyond_the_time() -> None:
    """What a poll writes at idle differs from the status only in its times: not worth a write
    (the autoscaling loop then writes only on its heartbeat). Anything else is."""
    earlier = datetime(2026, 1, 1, tzinfo=UTC)
    later = earlier + timedelta(seconds=15)
    reading = LagReading(0, 3, 0, 0)

    def fields(at: datetime, replicas: int, reading: LagReading) -> dict[str, object]:
        return {
            "desiredReplicas": replicas,
            "lag": lag_field(reading, at),
            "recommendations": recommendations_field([Recommendation(at, replicas)]),
        }

    status = fields(earlier, 0, reading)
    assert not changed_beyond_the_time(status, fields(later, 0, reading))
    assert changed_beyond_the_time(status, fields(later, 1, reading))
    more = LagReading(5, 3, 1, 0)
    assert changed_beyond_the_time(status, fields(later, 0, more))
    assert changed_beyond_the_time({}, fields(later, 0, reading))
