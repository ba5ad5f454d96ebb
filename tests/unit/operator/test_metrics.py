"""The operator's metrics are registered under the names the README documents."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from eventfleet.operator import metrics


def test_documented_metric_names_are_exported() -> None:
    metrics.ERRORS.labels("autoscaling").inc()
    metrics.SCALE_ACTIONS.labels("up").inc()
    metrics.RECONCILES.labels("ok").inc()
    text = generate_latest(REGISTRY).decode()
    for name in (
        'eventfleet_operator_errors_total{where="autoscaling"}',
        'eventfleet_operator_scale_actions_total{direction="up"}',
        'eventfleet_operator_reconciles_total{result="ok"}',
        "eventfleet_operator_lag_read_failures_total",
        "eventfleet_consumer_group_lag",
        "eventfleet_desired_replicas",
        "eventfleet_operator_reconcile_seconds_bucket",
    ):
        assert name in text, name
