"""The Kafka side of the gateway: an idempotent producer whose acknowledgements resolve asyncio
futures, and a watcher that knows whether Kafka is reachable.

Per worker process:
1. the event loop produces (`produce()` only enqueues, it never blocks), awaits one future per
   request, and serves delivery reports itself with `poll(0)` every millisecond while events are
   in flight. Reports resolve futures directly on the loop: no poll thread fighting the event loop
   for the GIL and no cross-thread wake-up per batch (a poll thread measured ~40 % slower);
2. a watcher thread reads the topic's metadata every second; while it fails, requests get 503 at
   once instead of waiting for the delivery timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from eventfleet.gateway import metrics
from eventfleet.gateway.ingest import Ready
from eventfleet.gateway.settings import Settings

log = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS: Final = 1.0
POLL_INTERVAL_SECONDS: Final = 0.001
METADATA_TIMEOUT_SECONDS: Final = 2.0
FAILED_CHECKS_FOR_OUTAGE: Final = 2


class Unavailable(Exception):  # noqa: N818 - reads as "raise Unavailable(...)"
    """Kafka cannot take the events now: the client should retry later (503)."""


@dataclass(slots=True, eq=False)
class Pending:
    """One request's events on their way to Kafka."""

    future: asyncio.Future[None]
    remaining: int
    started: float = 0.0
    failed: list[tuple[int, str]] = field(default_factory=list)  # (position, Kafka error)
    timed_out: bool = False


def producer_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        # Idempotence implies acks=all and bounded in-flight requests: retries after a lost
        # connection cannot duplicate or reorder a player's events.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.linger_ms,
        "message.timeout.ms": settings.delivery_timeout_ms,
        "queue.buffering.max.messages": settings.queue_max_messages,
        # Uncompressed: with lz4 the broker thread compressing a batch holds the partition
        # queue's lock, and produce() from the event loop waited ~26 us instead of ~5 us on two
        # cores. Clusters across a real network can opt in: --kafka-config compression.type=lz4.
        "compression.type": "none",
        # Same key -> same partition as Java clients, so other producers of player_id keys agree.
        "partitioner": "murmur2_random",
        # Notice a returning broker within a second or two (the default backs off to 10 s).
        "reconnect.backoff.max.ms": 1000,
        "client.id": "eventfleet-gateway",
    }
    config.update(settings.kafka_config)
    return config


class KafkaSink:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.topic = settings.topic
        self.queue_max = settings.queue_max_messages
        self.fire_and_forget = settings.ack_mode == "fire-and-forget"
        self.wait_seconds = settings.delivery_timeout_ms / 1000 + 2.0
        self._loop = loop
        config = producer_config(settings)
        config["error_cb"] = self._on_error
        self._producer = Producer(config)
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="kafka-watch", daemon=True)
        self.available = False
        self.status = "not checked yet"
        self._failed_checks = 0
        self._checked_once = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._check()
        self._checked_once = True
        self._watcher.start()

    def close(self, flush_seconds: float) -> int:
        """Stop the threads and deliver what is queued; returns the events left undelivered."""
        self._stop.set()
        self._watcher.join(timeout=METADATA_TIMEOUT_SECONDS + 1)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        left = self._producer.flush(flush_seconds)  # serves the last reports on this thread
        if left:
            log.error("shutdown: %d events were still undelivered after %ss", left, flush_seconds)
        return int(left)

    # -- producing (event loop) ------------------------------------------------------------

    def check_room(self, count: int) -> None:
        if not self.available:
            raise Unavailable(self.status)
        queued = len(self._producer)
        if queued + count > self.queue_max:
            metrics.REJECTS.labels("queue_full").inc()
            raise Unavailable(f"the producer queue is full ({queued} events waiting)")

    def send(self, ready: Sequence[Ready]) -> Pending:
        """Enqueue every event or none (the room is checked first); the Pending's future
        resolves when Kafka answered for all of them."""
        self.check_room(len(ready))
        pending = Pending(self._loop.create_future(), len(ready), time.perf_counter())
        produce, topic, delivered = self._producer.produce, self.topic, self._delivered
        try:
            for position, item in enumerate(ready):
                produce(
                    topic, item.payload, item.key, on_delivery=partial(delivered, pending, position)
                )
                self._in_flight += 1
        except (BufferError, KafkaException) as error:
            # Not expected after check_room; the events already enqueued still report.
            raise Unavailable(f"the producer refused the events: {error}") from error
        finally:
            self._arm()
        if self.fire_and_forget:
            pending.future.set_result(None)
        return pending

    async def wait(self, pending: Pending) -> None:
        if pending.future.done():
            return
        expiry = self._loop.call_later(self.wait_seconds, self._expire, pending)
        try:
            await pending.future
        finally:
            expiry.cancel()
        if pending.timed_out:
            raise Unavailable("Kafka did not acknowledge in time")

    @staticmethod
    def _expire(pending: Pending) -> None:
        # A safety net: librdkafka reports every event within message.timeout.ms.
        if not pending.future.done():
            pending.timed_out = True
            pending.future.set_result(None)

    # -- delivery reports (event loop) -----------------------------------------------------

    def _arm(self) -> None:
        if self._timer is None and self._in_flight > 0:
            self._timer = self._loop.call_later(POLL_INTERVAL_SECONDS, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._producer.poll(0)
        self._arm()

    def _delivered(
        self, pending: Pending, position: int, error: KafkaError | None, _message: Message
    ) -> None:
        self._in_flight -= 1
        if error is not None:
            metrics.DELIVERY_FAILURES.labels(error.name()).inc()
            metrics.EVENTS.labels("failed").inc()
            pending.failed.append((position, error.name()))
            if self.fire_and_forget:
                log.warning("fire-and-forget event lost: %s", error)
        pending.remaining -= 1
        if pending.remaining == 0:
            # Once a request: from handing its events to the producer to the last answer.
            metrics.PRODUCE_SECONDS.observe(time.perf_counter() - pending.started)
            if not pending.future.done():
                with contextlib.suppress(RuntimeError):  # the loop is gone at shutdown
                    pending.future.set_result(None)

    # -- reachability (watch thread) -------------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._set(available=False, status=f"Kafka unreachable: {error.str()}")

    def _check(self) -> None:
        try:
            found = self._producer.list_topics(self.topic, timeout=METADATA_TIMEOUT_SECONDS)
        except KafkaException as error:
            self._failed_check(f"Kafka unreachable: {error}")
            return
        topic = found.topics.get(self.topic)
        if topic is None or topic.error is not None:
            reason = topic.error.str() if topic is not None and topic.error else "missing"
            self._failed_check(f"topic {self.topic}: {reason}")
        else:
            self._failed_checks = 0
            self._set(available=True, status=f"topic {self.topic}: reachable")

    def _failed_check(self, status: str) -> None:
        # One slow metadata answer on a busy host is not an outage: two in a row are (the
        # delivery timeout still bounds every request meanwhile).
        self._failed_checks += 1
        if self._failed_checks >= FAILED_CHECKS_FOR_OUTAGE or not self._checked_once:
            self._set(available=False, status=status)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_SECONDS):
            self._check()
            metrics.QUEUE_DEPTH.set(len(self._producer))

    def _set(self, *, available: bool, status: str) -> None:
        if available != self.available:
            (log.info if available else log.warning)("Kafka: %s", status)
        self.available = available
        self.status = status
        metrics.KAFKA_AVAILABLE.set(1 if available else 0)
