"""The operator's Prometheus metrics (served by `eventfleet operator --metrics-port`)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

RECONCILES: Final = Counter(
    "eventfleet_operator_reconciles_total",
    "EventConsumer reconciles, by result (ok, retry, invalid, error).",
    ["result"],
)
ERRORS: Final = Counter(
    "eventfleet_operator_errors_total",
    "Failures by where they happened (reconcile: a step to retry; autoscaling: a pass that "
    "raised; deployment: restoring an owned Deployment).",
    ["where"],
)
SCALE_ACTIONS: Final = Counter(
    "eventfleet_operator_scale_actions_total",
    "Replica changes made by the autoscaler, by direction (up, down).",
    ["direction"],
)
LAG_READ_FAILURES: Final = Counter(
    "eventfleet_operator_lag_read_failures_total",
    "Polls where consumer-group lag could not be read from Kafka.",
)
CONSUMER_LAG: Final = Gauge(
    "eventfleet_consumer_group_lag",
    "Consumer-group lag last measured, per EventConsumer.",
    ["namespace", "name"],
)
DESIRED_REPLICAS: Final = Gauge(
    "eventfleet_desired_replicas",
    "Replicas the autoscaler decided, per EventConsumer.",
    ["namespace", "name"],
)
API_READS: Final = Counter(
    "eventfleet_operator_api_reads_total",
    "Objects read from the Kubernetes API by GET, by resource (the loop otherwise works from "
    "what the watches delivered).",
    ["resource"],
)
RECONCILE_SECONDS: Final = Histogram(
    "eventfleet_operator_reconcile_seconds",
    "Wall time of one reconcile (topic, schema, Deployment, status).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
