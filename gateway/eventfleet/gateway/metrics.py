"""Prometheus metrics of the gateway.

With several worker processes the CLI sets PROMETHEUS_MULTIPROC_DIR before they start, so each
worker writes its samples there and /metrics (served by any worker) adds them up.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

REQUESTS = Counter(
    "eventfleet_gateway_requests_total",
    "HTTP requests answered, by endpoint and status code",
    ["endpoint", "status"],
)
REQUEST_SECONDS = Histogram(
    "eventfleet_gateway_request_duration_seconds",
    "Time from the request's start to its answer, ingestion endpoints only",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
EVENTS = Counter(
    "eventfleet_gateway_events_total",
    "Events by outcome: accepted (acknowledged by Kafka, or queued in fire-and-forget mode), "
    "rejected (invalid), failed (Kafka did not take them)",
    ["outcome"],
)
REJECTS = Counter(
    "eventfleet_gateway_rejects_total",
    "Refused events and requests by reason (event reasons of the shared model, plus "
    "too_large, unsupported_media_type, unauthorized, rate_limited, unavailable, ...)",
    ["reason"],
)
PRODUCE_SECONDS = Histogram(
    "eventfleet_gateway_produce_latency_seconds",
    "Time from handing an event to the producer to Kafka's acknowledgement",
    buckets=LATENCY_BUCKETS,
)
DELIVERY_FAILURES = Counter(
    "eventfleet_gateway_delivery_failures_total",
    "Events the producer could not deliver, by Kafka error name",
    ["error"],
)
KAFKA_AVAILABLE = Gauge(
    "eventfleet_gateway_kafka_available",
    "1 when the topic's metadata could be read from Kafka recently, else 0",
    multiprocess_mode="livemin",
)
QUEUE_DEPTH = Gauge(
    "eventfleet_gateway_producer_queue_messages",
    "Events in the producers' queues waiting for Kafka",
    multiprocess_mode="livesum",
)


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
