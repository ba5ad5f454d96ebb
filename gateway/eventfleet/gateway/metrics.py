"""Prometheus metrics of the gateway.

With several worker processes the CLI sets PROMETHEUS_MULTIPROC_DIR before they start, so each
worker writes its samples there and /metrics (served by any worker) adds them up.

That mode makes every update a locked write to a memory-mapped file (~35 us a request measured
with the gateway's five updates), so the request path counts in plain dicts (`Local*`) and
`flush()` hands the sums to prometheus_client once a second, before /metrics renders and at
shutdown. `labels()` hands out one cached child per label set (every label here comes from a
small fixed set: endpoints, status codes, reasons, Kafka error names), so a request allocates
nothing to count.
"""

from __future__ import annotations

import bisect
import math
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


class LocalCounter:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self._pending: dict[tuple[str, ...], float] = {}
        self._children: dict[tuple[str, ...], BoundCounter] = {}

    def labels(self, *labels: str) -> BoundCounter:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = BoundCounter(self, labels)
        return child

    def add(self, labels: tuple[str, ...], amount: float) -> None:
        self._pending[labels] = self._pending.get(labels, 0.0) + amount

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for labels, amount in pending.items():
            (self.counter.labels(*labels) if labels else self.counter).inc(amount)


class BoundCounter:
    __slots__ = ("labels", "local")

    def __init__(self, local: LocalCounter, labels: tuple[str, ...]) -> None:
        self.local = local
        self.labels = labels

    def inc(self, amount: float = 1.0) -> None:
        self.local.add(self.labels, amount)


class LocalHistogram:
    """Bucket counts and sums kept locally, added to the prometheus Histogram on flush.

    prometheus_client has no batch observe; flush adds to the histogram's per-bucket values
    (`_buckets`, `_sum`: non-cumulative, one per upper bound), which its own observe() updates.
    tests/unit/gateway checks the exposition against direct observe() calls.
    """

    def __init__(self, histogram: Histogram, buckets: tuple[float, ...]) -> None:
        self.histogram = histogram
        self.bounds = [*buckets, math.inf]
        self._pending: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        self._children: dict[tuple[str, ...], BoundHistogram] = {}

    def labels(self, *labels: str) -> BoundHistogram:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = BoundHistogram(self, labels)
        return child

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        entry = self._pending.get(labels)
        if entry is None:
            entry = self._pending[labels] = ([0] * len(self.bounds), [0.0])
        entry[0][bisect.bisect_left(self.bounds, value)] += 1
        entry[1][0] += value

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for labels, (counts, total) in pending.items():
            child = self.histogram.labels(*labels) if labels else self.histogram
            for index, count in enumerate(counts):
                if count:
                    child._buckets[index].inc(count)
            child._sum.inc(total[0])


class BoundHistogram:
    __slots__ = ("labels", "local")

    def __init__(self, local: LocalHistogram, labels: tuple[str, ...]) -> None:
        self.local = local
        self.labels = labels

    def observe(self, value: float) -> None:
        self.local.observe(value, self.labels)


LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

REQUESTS = LocalCounter(
    Counter(
        "eventfleet_gateway_requests_total",
        "HTTP requests answered, by endpoint and status code",
        ["endpoint", "status"],
    )
)
REQUEST_SECONDS = LocalHistogram(
    Histogram(
        "eventfleet_gateway_request_duration_seconds",
        "Time from the request's start to its answer, ingestion endpoints only",
        ["endpoint"],
        buckets=LATENCY_BUCKETS,
    ),
    LATENCY_BUCKETS,
)
EVENTS = LocalCounter(
    Counter(
        "eventfleet_gateway_events_total",
        "Events by outcome: accepted (acknowledged by Kafka, or queued in fire-and-forget "
        "mode), rejected (invalid), failed (Kafka did not take them)",
        ["outcome"],
    )
)
REJECTS = LocalCounter(
    Counter(
        "eventfleet_gateway_rejects_total",
        "Refused events and requests by reason (event reasons of the shared model, plus "
        "too_large, unsupported_media_type, unauthorized, rate_limited, unavailable, ...)",
        ["reason"],
    )
)
PRODUCE_SECONDS = LocalHistogram(
    Histogram(
        "eventfleet_gateway_produce_latency_seconds",
        "Time from handing a request's events to the producer to Kafka's last "
        "acknowledgement (or failure), once a request",
        buckets=LATENCY_BUCKETS,
    ),
    LATENCY_BUCKETS,
)
DELIVERY_FAILURES = LocalCounter(
    Counter(
        "eventfleet_gateway_delivery_failures_total",
        "Events the producer could not deliver, by Kafka error name",
        ["error"],
    )
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


LOCAL: Final = (REQUESTS, REQUEST_SECONDS, EVENTS, REJECTS, PRODUCE_SECONDS, DELIVERY_FAILURES)


def flush() -> None:
    for metric in LOCAL:
        metric.flush()


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics and its content type (this worker's counts flushed
    first; the other workers' are at most a second old)."""
    flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
