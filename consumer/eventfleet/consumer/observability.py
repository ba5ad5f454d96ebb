"""Metrics, probes and JSON logs of one consumer process.

`/metrics` is Prometheus text; `/healthz` answers 200 while the loop is alive (it reports a
heartbeat at least every few seconds, also while it backs off or waits for a lock); `/readyz`
answers 200 while the consumer can do its work (PostgreSQL reachable, Kafka accepting its
credentials), 503 otherwise. Both
name a known wait in their body (`ok: waiting for the lock on ..., held by pid ...`). Each
Consumer has its own registry so that tests can run several in one process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS: Final = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
HEARTBEAT_STALE_SECONDS: Final = 60.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "eventfleet_consumer_consumed", "Records received from Kafka", registry=r
        )
        self.processed = Counter(
            "eventfleet_consumer_processed", "Valid events written to PostgreSQL", registry=r
        )
        self.replayed = Counter(
            "eventfleet_consumer_replayed",
            "Records skipped because their offsets were already processed",
            registry=r,
        )
        self.dlq = Counter(
            "eventfleet_consumer_dlq", "Records sent to the DLQ", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "eventfleet_consumer_duplicates",
            "Events not counted because their event_id was counted before (a client's retry)",
            registry=r,
        )
        self.topic_recreated = Counter(
            "eventfleet_consumer_topic_recreated",
            "Partitions restarted from the beginning because their topic was deleted and "
            "created again (a new topic id)",
            registry=r,
        )
        self.internal_errors = Counter(
            "eventfleet_consumer_internal_errors",
            "Exceptions of the consumer's own code, caught so that the loop goes on",
            ["stage"],
            registry=r,
        )
        self.batch_size = Histogram(
            "eventfleet_consumer_batch_size",
            "Records per batch",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            "eventfleet_consumer_batch_duration_seconds",
            "Parse, transaction and Redis time of one batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "eventfleet_consumer_end_to_end_latency_seconds",
            "From an event's timestamp to the commit of its batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "eventfleet_consumer_lag",
            "High watermark minus the next offset to process",
            ["topic", "partition"],
            registry=r,
        )
        self.last_commit = Gauge(
            "eventfleet_consumer_last_commit_timestamp_seconds",
            "Unix time of the last committed batch",
            registry=r,
        )
        self.db_errors = Counter(
            "eventfleet_consumer_database_errors",
            "Failed PostgreSQL attempts (the batch is retried)",
            registry=r,
        )
        self.redis_errors = Counter(
            "eventfleet_consumer_redis_errors", "Failed Redis writes", registry=r
        )
        self.redis_resyncs = Counter(
            "eventfleet_consumer_redis_resyncs",
            "Full rebuilds of Redis from PostgreSQL",
            registry=r,
        )
        self.redis_rewrites = Counter(
            "eventfleet_consumer_redis_rewrites",
            "Hashes rewritten whole from PostgreSQL because they had missed a change",
            registry=r,
        )
        self.ready = Gauge("eventfleet_consumer_ready", "1 while ready", registry=r)
        self.kafka_commit_failures = Counter(
            "eventfleet_consumer_kafka_commit_failures",
            "Offset commits Kafka refused or did not answer (they are sent again)",
            registry=r,
        )
        self.lock_waits = Counter(
            "eventfleet_consumer_lock_waits",
            "PostgreSQL lock waits that reached the lock timeout (the work is retried)",
            ["lock"],
            registry=r,
        )
        self.dlq_produce_failures = Counter(
            "eventfleet_consumer_dlq_produce_failures",
            "Dead letters the DLQ topic did not take (PostgreSQL's dlq_events still has them)",
            registry=r,
        )


class Health:
    """What the probes report; written by the loop thread, read by the HTTP thread.

    `waiting` names a known wait (a lock and its holder, another EventConsumer's sink): the
    probes say it, so that a consumer that waits correctly is seen to, and its loop keeps
    beating meanwhile (every wait is bounded and retried, see pg_waits)."""

    def __init__(self, ready_gauge: Gauge | None = None) -> None:
        self._beat = time.monotonic()
        self._ready = False
        self._ready_gauge = ready_gauge
        self._waiting: tuple[str, float] | None = None  # (what, since when)
        # A reason not to be ready that the loop's own steps do not clear (Kafka refusing the
        # credentials): kept until whoever set it clears it.
        self._blocked: str | None = None

    def beat(self) -> None:
        self._beat = time.monotonic()

    @property
    def seconds_since_beat(self) -> float:
        return time.monotonic() - self._beat

    @property
    def alive(self) -> bool:
        return self.seconds_since_beat < HEARTBEAT_STALE_SECONDS

    @property
    def ready(self) -> bool:
        return self._ready and self._blocked is None

    @ready.setter
    def ready(self, ready: bool) -> None:
        self._ready = ready
        self._update_gauge()
        if ready:
            self._waiting = None  # whatever was waited for came

    def block(self, why: str | None) -> None:
        """Not ready for `why` whatever the loop sets, until block(None)."""
        self._blocked = why
        self._update_gauge()

    def _update_gauge(self) -> None:
        if self._ready_gauge is not None:
            self._ready_gauge.set(1 if self.ready else 0)

    def wait_for(self, what: str | None) -> None:
        """Say what the loop waits for (None: nothing); a wait that goes on keeps its start."""
        current = self._waiting
        if what is None:
            self._waiting = None
        else:
            self._waiting = (what, current[1] if current is not None else time.monotonic())

    @property
    def waiting(self) -> str | None:
        """The known wait, with how long it has lasted; None when there is none."""
        current = self._waiting
        if current is None:
            return None
        what, since = current
        return f"{what} (for {time.monotonic() - since:.0f} s)"

    def saying(self, state: str) -> bytes:
        waiting = self._blocked or self.waiting
        return f"{state}: {waiting}\n".encode() if waiting else f"{state}\n".encode()


class _Handler(BaseHTTPRequestHandler):
    metrics: ClassVar[Metrics]
    health: ClassVar[Health]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok = self.health.alive
            self._send(200 if ok else 503, self.health.saying("ok" if ok else "loop stalled"))
        elif path == "/readyz":
            ok = self.health.ready
            self._send(200 if ok else 503, self.health.saying("ready" if ok else "not ready"))
        else:
            self._send(404, b"not found\n")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - the stdlib's signature
        return  # probes every few seconds would drown the logs


class HttpServer:
    """The probe and metrics server on a daemon thread."""

    def __init__(self, host: str, port: int, metrics: Metrics, health: Health) -> None:
        handler = type("Handler", (_Handler,), {"metrics": metrics, "health": health})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="http", kwargs={"poll_interval": 0.5}
        )
        self.thread.daemon = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HttpServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
