"""The broker dies under the gateway's open connections (SIGKILL of a broker of the test's own)
and comes back: every request is answered — 202 or 503 with Retry-After, never a hang or another
5xx — the gateway recovers by itself, and every acknowledged event is in Kafka exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.private_kafka import PrivateKafka, private_kafka
from tests.integration.gateway.harness import Gateway, consume_all, running_gateway

pytestmark = pytest.mark.integration

BATCH = "/api/v1/events/batch"
SENDERS = 4
EVENTS_PER_REQUEST = 20
REQUEST_TIMEOUT_SECONDS = 30  # far above the gateway's delivery timeout: a hang fails the test
OUTAGE_SECONDS = 6


@pytest.fixture
def broker() -> Iterator[PrivateKafka]:
    with private_kafka() as started:
        yield started


class Senders:
    """Threads posting batches until stopped, recording every answer and the accepted ids."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.statuses: Counter[int] = Counter()
        self.accepted: list[str] = []
        self.slowest = 0.0
        self.without_retry_after = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(SENDERS)
        ]

    def __enter__(self) -> Senders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_SECONDS + 5)

    def _send(self, sender: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            events: list[dict[str, Any]] = [
                {
                    "event_type": "player_login",
                    "player_id": f"s{sender}-p{i}",
                    "game_id": "outage",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "data": {"platform": "pc"},
                }
                for i in range(EVENTS_PER_REQUEST)
            ]
            started = time.monotonic()
            answer = self.gateway.post(BATCH, events)
            elapsed = time.monotonic() - started
            with self._lock:
                self.statuses[answer.status] += 1
                self.slowest = max(self.slowest, elapsed)
                if answer.status == 202:
                    self.accepted.extend(answer.json()["event_ids"])
                elif answer.status == 503:
                    self.without_retry_after += "retry-after" not in answer.headers
                    # Events Kafka did take before failing are acknowledged as well.
                    self.accepted.extend(answer.json().get("delivered_event_ids", []))
            if answer.status != 202:
                time.sleep(0.2)

    def count(self, status: int) -> int:
        with self._lock:
            return self.statuses[status]


def test_broker_killed_mid_run_503_then_recovers_and_no_accepted_event_is_lost(
    broker: PrivateKafka, consumer_group: str, tmp_path: Path
) -> None:
    topic = "outage"
    broker.create_topic(topic, partitions=3)
    with (
        running_gateway(
            tmp_path, broker.bootstrap, topic, "--delivery-timeout-ms", "3000"
        ) as gateway,
        Senders(gateway) as senders,
    ):
        deadline = time.monotonic() + 30
        while senders.count(202) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert senders.count(202) >= 20, senders.statuses
        broker.kill()
        time.sleep(OUTAGE_SECONDS)
        unavailable = senders.count(503)
        assert unavailable > 0, f"no 503 while the broker was dead: {senders.statuses}"
        assert gateway.request("GET", "/healthz").status == 200
        broker.start()
        recovered = senders.count(202)
        deadline = time.monotonic() + 60
        while senders.count(202) < recovered + 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert senders.count(202) >= recovered + 20, f"no recovery: {senders.statuses}"
        gateway.wait_ready(timeout=30)
    assert set(senders.statuses) <= {202, 503}, senders.statuses
    assert senders.slowest < REQUEST_TIMEOUT_SECONDS
    assert senders.without_retry_after == 0
    records = consume_all(broker.bootstrap, topic, consumer_group, expected=len(senders.accepted))
    in_kafka = Counter(value["event_id"] for _, value in records)
    missing = [event_id for event_id in senders.accepted if event_id not in in_kafka]
    assert not missing, f"{len(missing)} acknowledged events are not in Kafka"
    doubled = [event_id for event_id in senders.accepted if in_kafka[event_id] > 1]
    assert not doubled, f"{len(doubled)} acknowledged events are in Kafka twice"
