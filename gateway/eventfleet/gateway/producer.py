"""The Kafka side of the gateway: an idempotent producer whose acknowledgements resolve asyncio
futures, and a watcher that knows whether Kafka is reachable.

Per worker process:
1. the event loop produces (`produce()` only enqueues, it never blocks), awaits one future per
   request, and serves delivery reports itself with `poll(0)` every millisecond while events are
   in flight: one loop callback serves every report that arrived meanwhile, so wake-ups are
   batched, and there is no poll thread fighting the event loop for the GIL (one measured ~40 %
   slower) nor a call_soon_threadsafe per message;
2. each request's `Pending` is itself the delivery callback of its events (no closure per
   event), and the same tick expires requests past their deadline (no timer per request);
3. admission is bounded in time, not only in size: while the oldest request of this worker has
   waited for Kafka longer than `max_queue_wait_ms`, new requests get 503 at once instead of
   queueing behind it for seconds;
4. a watcher thread reads the topic's metadata every second; while it fails, requests get 503 at
   once instead of waiting for the delivery timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from eventfleet.gateway import metrics
from eventfleet.gateway.ingest import Ready
from eventfleet.gateway.settings import Settings, kafka_binding

log = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS: Final = 1.0
POLL_INTERVAL_SECONDS: Final = 0.001
METADATA_TIMEOUT_SECONDS: Final = 2.0
FAILED_CHECKS_FOR_OUTAGE: Final = 2
# The safety net past librdkafka's own message.timeout.ms (it reports every event by then).
EXPIRY_GRACE_SECONDS: Final = 2.0


class Unavailable(Exception):  # noqa: N818 - reads as "raise Unavailable(...)"
    """Kafka cannot take the events now: the client should retry later (503)."""


_FAILED_EVENTS = metrics.EVENTS.labels("failed")
_QUEUE_FULL = metrics.REJECTS.labels("queue_full")
_KAFKA_BEHIND = metrics.REJECTS.labels("kafka_behind")


class Pending:
    """One request's events on their way to Kafka; also the delivery callback of each of them.

    One callable object per request instead of a closure per event: a report names the event
    only on failure, by its payload (the position is looked up then, rarely)."""

    __slots__ = (
        "_positions",
        "failed",
        "fire_and_forget",
        "future",
        "ready",
        "remaining",
        "started",
        "timed_out",
    )

    def __init__(
        self,
        future: asyncio.Future[None],
        remaining: int,
        started: float = 0.0,
        ready: Sequence[Ready] = (),
        *,
        fire_and_forget: bool = False,
    ) -> None:
        self.future = future
        self.remaining = remaining
        self.started = started
        self.ready = ready
        self.fire_and_forget = fire_and_forget
        self.failed: list[tuple[int, str]] = []  # (position, Kafka error)
        self.timed_out = False
        self._positions: dict[bytes, deque[int]] | None = None

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failed(error, message)
        self.remaining -= 1
        if self.remaining == 0:
            # Once a request: from handing its events to the producer to the last answer.
            metrics.PRODUCE_SECONDS.observe(time.perf_counter() - self.started)
            if not self.future.done():
                with contextlib.suppress(RuntimeError):  # the loop is gone at shutdown
                    self.future.set_result(None)

    def _failed(self, error: KafkaError, message: Message) -> None:
        name = error.name()
        metrics.DELIVERY_FAILURES.labels(name).inc()
        _FAILED_EVENTS.inc()
        if self.fire_and_forget:
            log.warning("fire-and-forget event lost: %s", error)
        if self._positions is None:  # built once, at the first failure of the request
            self._positions = {}
            for position, item in enumerate(self.ready):
                self._positions.setdefault(item.payload, deque()).append(position)
        # Identical payloads (a client repeating its own event_id) take their positions in turn.
        positions = self._positions.get(message.value() or b"")
        position = positions.popleft() if positions else len(self.failed)  # else: not expected
        self.failed.append((position, name))


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
        # TCP_NODELAY: every request waits for its produce request's answer, and Nagle held
        # small produce requests behind unacknowledged ones (A/B at wrk -c128 here: p99 17-19 ms
        # instead of 33-157 ms, throughput the same or better).
        "socket.nagle.disable": True,
        # Notice a returning broker within a second or two (the default backs off to 10 s).
        "reconnect.backoff.max.ms": 1000,
        "client.id": "eventfleet-gateway",
    }
    if settings.kafka_auth is not None:
        config.update(kafka_binding(settings).client_config())
    config.update(settings.kafka_config)
    return config


class KafkaSink:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.topic = settings.topic
        self.queue_max = settings.queue_max_messages
        self.fire_and_forget = settings.ack_mode == "fire-and-forget"
        self.wait_seconds = settings.delivery_timeout_ms / 1000 + EXPIRY_GRACE_SECONDS
        self.max_queue_wait = settings.max_queue_wait_ms / 1000
        self._loop = loop
        config = producer_config(settings)
        config["error_cb"] = self._on_error
        self._producer = Producer(config)
        # Requests waiting for Kafka, oldest first (started times only grow, so the head is also
        # the first to expire and the one whose age says whether Kafka keeps up).
        self._waiting: deque[Pending] = deque()
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
        waited = self._oldest_wait(time.perf_counter())
        if waited > self.max_queue_wait:
            _KAFKA_BEHIND.inc()
            raise Unavailable(
                f"Kafka is behind: the oldest request has waited {waited * 1000:.0f} ms for its "
                "acknowledgement"
            )
        queued = len(self._producer)
        if queued + count > self.queue_max:
            _QUEUE_FULL.inc()
            raise Unavailable(f"the producer queue is full ({queued} events waiting)")

    def send(self, ready: Sequence[Ready]) -> Pending:
        """Enqueue every event or none (the room is checked first); the Pending's future
        resolves when Kafka answered for all of them."""
        self.check_room(len(ready))
        pending = Pending(
            self._loop.create_future(),
            len(ready),
            time.perf_counter(),
            ready,
            fire_and_forget=self.fire_and_forget,
        )
        produce, topic = self._producer.produce, self.topic
        try:
            for item in ready:
                produce(topic, item.payload, item.key, on_delivery=pending)
        except (BufferError, KafkaException) as error:
            # Not expected after check_room; the events already enqueued still report.
            raise Unavailable(f"the producer refused the events: {error}") from error
        finally:
            self._arm()
        if self.fire_and_forget:
            pending.future.set_result(None)
        else:
            self._waiting.append(pending)
        return pending

    async def wait(self, pending: Pending) -> None:
        if not pending.future.done():
            await pending.future
        if pending.timed_out:
            raise Unavailable("Kafka did not acknowledge in time")

    def _oldest_wait(self, now: float) -> float:
        """Seconds the oldest unanswered request has waited (0 when none); drops answered ones
        from the head."""
        waiting = self._waiting
        while waiting:
            head = waiting[0]
            if head.future.done():
                waiting.popleft()
            else:
                return now - head.started
        return 0.0

    def _expire(self, now: float) -> None:
        # A safety net: librdkafka reports every event within message.timeout.ms.
        while self._oldest_wait(now) > self.wait_seconds:
            head = self._waiting.popleft()
            head.timed_out = True
            head.future.set_result(None)

    # -- delivery reports (event loop) -----------------------------------------------------

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self._loop.call_later(POLL_INTERVAL_SECONDS, self._tick)

    def _tick(self) -> None:
        self._timer = None
        # One callback serves every report that arrived since the last tick.
        self._producer.poll(0)
        if self._waiting:
            self._expire(time.perf_counter())
        # len() counts events queued, in flight and reported but not yet served.
        if len(self._producer) or self._waiting:
            self._arm()

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
