"""The operator's Prometheus metrics (served by `eventfleet operator --metrics-port`).

The per-EventConsumer series (labels `namespace`, `name`) are removed when the EventConsumer is
deleted (`forget`), so a deleted fleet leaves no series behind for an alert to fire on. The
dashboard and alerts in manifests/monitoring use these names (tests/unit/monitoring checks them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram

from eventfleet.operator.conditions import ConditionType

RECONCILES: Final = Counter(
    "eventfleet_operator_reconciles_total",
    "EventConsumer reconciles, by result (ok, retry, invalid, error).",
    ["result"],
)
ERRORS: Final = Counter(
    "eventfleet_operator_errors_total",
    "Failures by where they happened (reconcile: a step to retry; autoscaling: a pass that "
    "raised; deployment: restoring an owned Deployment; status: a status the API server "
    "refused).",
    ["where"],
)
SCALE_ACTIONS: Final = Counter(
    "eventfleet_operator_scale_actions_total",
    "Replica changes made by the autoscaler, per EventConsumer and direction (up, down).",
    ["namespace", "name", "direction"],
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
LAST_POLL: Final = Gauge(
    "eventfleet_operator_last_poll_timestamp_seconds",
    "When the lag of the EventConsumer was last polled (Unix time). status.lag.measuredAt is "
    "written only when the measurement changed, or every few minutes at idle.",
    ["namespace", "name"],
)
PASSES_SKIPPED: Final = Counter(
    "eventfleet_operator_autoscaling_passes_skipped_total",
    "Ticks of the autoscaling loop that skipped an EventConsumer because its previous pass was "
    "still at work (a slow or unreachable Kafka).",
)
LEADER: Final = Gauge(
    "eventfleet_operator_leader",
    "1 while this operator replica holds the leader Lease (or runs without leader election).",
)
DESIRED_REPLICAS: Final = Gauge(
    "eventfleet_desired_replicas",
    "Replicas the autoscaler decided, per EventConsumer.",
    ["namespace", "name"],
)
MAX_REPLICAS: Final = Gauge(
    "eventfleet_max_replicas",
    "The most replicas the autoscaler may run, per autoscaled EventConsumer: replicas.max, "
    "capped at the partition count (capAtPartitions) or the partitions with lag "
    "(capAtPartitionsWithLag) as of the last lag reading.",
    ["namespace", "name"],
)
READY_REPLICAS: Final = Gauge(
    "eventfleet_ready_replicas",
    "Ready consumer replicas (status.readyReplicas), per EventConsumer.",
    ["namespace", "name"],
)
CONDITION: Final = Gauge(
    "eventfleet_condition",
    "1 while the EventConsumer's condition is True, 0 while it is False or Unknown.",
    ["namespace", "name", "condition"],
)
API_READS: Final = Counter(
    "eventfleet_operator_api_reads_total",
    "Objects read from the Kubernetes API by GET, by resource (the loop otherwise works from "
    "what the watches delivered).",
    ["resource"],
)
POLLS: Final = Counter(
    "eventfleet_operator_polls_total",
    "Lag polls of the autoscaling loop (one per EventConsumer and pollIntervalSeconds).",
)
RECONCILE_SECONDS: Final = Histogram(
    "eventfleet_operator_reconcile_seconds",
    "Wall time of one reconcile (topic, schema, Deployment, status).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


_PER_CONSUMER: Final = (
    CONSUMER_LAG,
    LAST_POLL,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    READY_REPLICAS,
)


def condition_values(status: Mapping[str, Any]) -> dict[str, float]:
    """Each known condition's gauge value from an EventConsumer's status (pure): 1 for True, 0
    for False, Unknown or not reported yet."""
    found = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return {kind.value: 1.0 if found.get(kind.value) == "True" else 0.0 for kind in ConditionType}


def record_status(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """The status as the watch delivered it: ready replicas and conditions."""
    READY_REPLICAS.labels(namespace, name).set(int(status.get("readyReplicas") or 0))
    for condition, value in condition_values(status).items():
        CONDITION.labels(namespace, name, condition).set(value)


def forget(namespace: str, name: str) -> None:
    """Remove every series of a deleted EventConsumer."""
    # remove() of a label set never set is a no-op.
    for gauge in _PER_CONSUMER:
        gauge.remove(namespace, name)
    for kind in ConditionType:
        CONDITION.remove(namespace, name, kind.value)
    for direction in ("up", "down"):
        SCALE_ACTIONS.remove(namespace, name, direction)
