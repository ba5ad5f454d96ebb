"""The demo's own scrape during the burst, and the dashboard panels drawn from it.

Every second: each EventConsumer's lag and desired/ready replicas from the operator's /metrics
(what the dashboard's panels query), and each consumer group's committed offsets from Kafka, whose
growth is the events/s that mode processed. Committed offsets are used rather than the replicas'
own counters because replicas come and go while scaling, and a counter that leaves with its
replica would read as a negative rate.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from demo_chart import BLUE, GREEN, ORANGE, Panel, Series, write
from prometheus_client.parser import text_string_to_metric_families

GAUGES = {
    "eventfleet_consumer_group_lag": "lag",
    "eventfleet_desired_replicas": "desired",
    "eventfleet_ready_replicas": "ready",
}
COLORS = [BLUE, ORANGE, GREEN]


def parse_fleet(text: str, namespace: str) -> dict[str, dict[str, float]]:
    """Per EventConsumer of namespace: its lag, desired and ready replicas from a /metrics page."""
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in GAUGES and sample.labels.get("namespace") == namespace:
                found.setdefault(sample.labels["name"], {})[GAUGES[sample.name]] = sample.value
    return found


def rates(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A counter's growth per second between consecutive samples, at the later sample's time."""
    return [
        (t1, max(0.0, (v1 - v0) / (t1 - t0)))
        for (t0, v0), (t1, v1) in itertools.pairwise(points)
        if t1 > t0
    ]


@dataclass
class Scrape:
    """What was sampled, per EventConsumer name: (seconds since the start, value) lists."""

    gauges: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    committed: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add_gauges(self, at: float, fleet: dict[str, dict[str, float]]) -> None:
        for name, values in fleet.items():
            for key, value in values.items():
                self.gauges.setdefault(name, {}).setdefault(key, []).append((at, value))

    def panels(self) -> list[Panel]:
        names = sorted(set(self.gauges) | set(self.committed))
        color = {name: COLORS[index % len(COLORS)] for index, name in enumerate(names)}

        def series(key: str, *, dashed: bool = False, labelled: bool = True) -> list[Series]:
            return [
                Series(name if labelled else "", self.gauges[name][key], color[name], dashed)
                for name in names
                if key in self.gauges.get(name, {})
            ]

        return [
            Panel("Lag (messages), seconds since the burst", series("lag")),
            Panel(
                "Replicas: desired, ready (dashed)",
                series("desired") + series("ready", dashed=True, labelled=False),
            ),
            Panel(
                "Events/s processed per mode",
                [
                    Series(name, rates(self.committed[name]), color[name])
                    for name in names
                    if name in self.committed
                ],
            ),
        ]


class Sampler:
    """Samples in a background thread from start() until stop(), then draws the panels."""

    def __init__(
        self, metrics_url: str, namespace: str, bootstrap: str, topic: str, groups: dict[str, str]
    ) -> None:
        self.metrics_url, self.namespace, self.topic, self.groups = (
            metrics_url,
            namespace,
            topic,
            groups,
        )
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.scrape = Scrape()
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-scrape", daemon=True)

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> Scrape:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.scrape

    def _run(self) -> None:
        while not self._stop.is_set():
            tick = time.monotonic()
            try:
                self.sample(tick - self._started)
            except Exception:  # noqa: BLE001 - one missed sample must not end the demo's picture
                self.failures += 1
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))

    def sample(self, at: float) -> None:
        with urllib.request.urlopen(self.metrics_url, timeout=2) as reply:  # noqa: S310 - loopback
            self.scrape.add_gauges(at, parse_fleet(reply.read().decode(), self.namespace))
        for name, total in self.committed_totals().items():
            self.scrape.committed.setdefault(name, []).append((at, total))

    def committed_totals(self) -> dict[str, float]:
        """Per EventConsumer, its group's committed offsets summed over the topic's partitions."""
        partitions = self.admin.list_topics(self.topic, timeout=2).topics[self.topic].partitions
        totals: dict[str, float] = {}
        for name, group in self.groups.items():
            request = ConsumerGroupTopicPartitions(
                group, [TopicPartition(self.topic, p) for p in partitions]
            )
            future = self.admin.list_consumer_group_offsets([request])[group]
            offsets = future.result(timeout=2).topic_partitions or []
            # A partition with nothing committed yet reads as a negative offset: it counts as 0.
            totals[name] = float(sum(max(0, tp.offset) for tp in offsets))
        return totals


def save(scrape: Scrape, path: Path) -> Path:
    return write(path, scrape.panels())
