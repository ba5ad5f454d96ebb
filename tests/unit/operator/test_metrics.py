"""The operator's metrics are registered under the names the README documents, mirror the
status, and go with a deleted EventConsumer."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from eventfleet.operator import metrics
from eventfleet.operator.conditions import ConditionType


def test_documented_metric_names_are_exported() -> None:
    metrics.ERRORS.labels("autoscaling").inc()
    metrics.SCALE_ACTIONS.labels("ns", "ec", "up").inc()
    metrics.RECONCILES.labels("ok").inc()
    text = generate_latest(REGISTRY).decode()
    for name in (
        'eventfleet_operator_errors_total{where="autoscaling"}',
        'eventfleet_operator_scale_actions_total{direction="up",name="ec",namespace="ns"}',
        'eventfleet_operator_reconciles_total{result="ok"}',
        "eventfleet_operator_lag_read_failures_total",
        "eventfleet_consumer_group_lag",
        "eventfleet_desired_replicas",
        "eventfleet_max_replicas",
        "eventfleet_ready_replicas",
        "eventfleet_condition",
        "eventfleet_operator_reconcile_seconds_bucket",
    ):
        assert name in text, name


def test_condition_values_are_one_only_for_true() -> None:
    status = {
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "AutoscalerHealthy", "status": "False"},
            {"type": "TopicReady", "status": "Unknown"},
            {"type": "SomethingNew", "status": "True"},  # not a known condition: no series
        ]
    }
    assert metrics.condition_values(status) == {
        "TopicReady": 0.0,
        "SchemaReady": 0.0,  # not reported yet
        "DeploymentAvailable": 0.0,
        "AutoscalerHealthy": 0.0,
        "DlqTopicReady": 0.0,
        "Ready": 1.0,
    }
    assert metrics.condition_values({}) == dict.fromkeys((c.value for c in ConditionType), 0.0)


def sample(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def test_status_is_mirrored_and_a_deleted_event_consumer_leaves_no_series() -> None:
    who = {"namespace": "shop", "name": "stats"}
    other = {"namespace": "shop", "name": "logger"}
    status = {"readyReplicas": 3, "conditions": [{"type": "Ready", "status": "True"}]}
    metrics.record_status("shop", "stats", status)
    metrics.record_status("shop", "logger", status)
    metrics.CONSUMER_LAG.labels("shop", "stats").set(1200)
    metrics.DESIRED_REPLICAS.labels("shop", "stats").set(3)
    metrics.MAX_REPLICAS.labels("shop", "stats").set(6)
    metrics.SCALE_ACTIONS.labels("shop", "stats", "up").inc()
    assert sample("eventfleet_ready_replicas", **who) == 3
    assert sample("eventfleet_condition", condition="Ready", **who) == 1
    assert sample("eventfleet_condition", condition="SchemaReady", **who) == 0

    metrics.forget("shop", "stats")

    text = generate_latest(REGISTRY).decode()
    assert 'name="stats",namespace="shop"' not in text
    assert sample("eventfleet_ready_replicas", **other) == 3  # the other one stays
    metrics.forget("shop", "stats")  # twice is harmless
    metrics.forget("shop", "logger")
