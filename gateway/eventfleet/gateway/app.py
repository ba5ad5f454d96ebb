"""The gateway's HTTP application (RSGI, served by granian; see cli.py for why).

Thin handlers: routing, the checks every POST goes through in order (API key 401, rate limit 429,
content type 415, size 413), then `ingest` decides 400s and `producer` 202/503. Every answer is
JSON with a stable `error` code, and every refusal is counted by reason.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Protocol

from eventfleet.contract.events import ParseLimits
from eventfleet.gateway import ingest, metrics
from eventfleet.gateway.docs import load_assets
from eventfleet.gateway.http import (
    Headers,
    Scope,
    TooLarge,
    Transport,
    api_key,
    client_ip,
    query_flag,
    read_body,
)
from eventfleet.gateway.ids import new_event_id_text
from eventfleet.gateway.ingest import BodyError, Decoded, Ready
from eventfleet.gateway.openapi import build_openapi
from eventfleet.gateway.producer import KafkaSink, Pending, Unavailable
from eventfleet.gateway.ratelimit import TokenBuckets, worker_share
from eventfleet.gateway.settings import Settings

log = logging.getLogger(__name__)

EVENTS_PATH: Final = "/api/v1/events"
BATCH_PATH: Final = "/api/v1/events/batch"
JSON: Final = "application/json"
METRICS_FLUSH_SECONDS: Final = 1.0


class Sink(Protocol):
    available: bool
    status: str

    def send(self, ready: tuple[Ready, ...]) -> Pending: ...
    async def wait(self, pending: Pending) -> None: ...
    def close(self, flush_seconds: float) -> int: ...


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        sink_factory: Callable[[Settings, asyncio.AbstractEventLoop], Sink] | None = None,
        clock: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = new_event_id_text,
    ) -> None:
        self.settings = settings
        self.limits = ParseLimits(max_event_bytes=settings.max_event_bytes)
        self.api_keys = settings.all_api_keys()
        self.buckets = (
            TokenBuckets(
                *worker_share(
                    settings.rate_limit_per_second, settings.rate_limit_burst, settings.workers
                ),
                settings.rate_limit_max_clients,
            )
            if settings.rate_limit_per_second > 0
            else None
        )
        self.sink: Sink | None = None
        self._flusher: asyncio.TimerHandle | None = None
        self._sink_factory = sink_factory or _kafka_sink
        self._clock = clock
        self._new_id = new_id
        self._openapi = ingest.dumps(build_openapi(settings))
        self._docs = load_assets()
        self._read_paths = frozenset(("/healthz", "/readyz", "/metrics", "/openapi.json"))
        self._retry_after = str(settings.retry_after_seconds)

    # -- RSGI lifecycle ----------------------------------------------------------------------

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.start(loop)

    def __rsgi_del__(self, _loop: asyncio.AbstractEventLoop) -> None:
        self.stop()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        # What exists now (modules, models, the app) lives as long as the worker: keep it out of
        # every garbage collection, which then only walks what requests allocate.
        gc.freeze()
        self.sink = self._sink_factory(self.settings, loop)
        self._flusher = loop.call_later(METRICS_FLUSH_SECONDS, self._flush_metrics, loop)

    def _flush_metrics(self, loop: asyncio.AbstractEventLoop) -> None:
        metrics.flush()
        self._flusher = loop.call_later(METRICS_FLUSH_SECONDS, self._flush_metrics, loop)

    def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        metrics.flush()
        if self.sink is not None:
            left = self.sink.close(self.settings.shutdown_flush_seconds)
            log.info("gateway stopped; %d events left undelivered", left)
            self.sink = None

    # -- dispatch ----------------------------------------------------------------------------

    async def __rsgi__(self, scope: Scope, proto: Transport) -> None:
        if scope.proto != "http":
            return
        path = scope.path
        method = scope.method
        if path in (EVENTS_PATH, BATCH_PATH):
            if method != "POST":
                self._answer(
                    proto,
                    path,
                    405,
                    _problem("method_not_allowed", "use POST"),
                    [("allow", "POST")],
                )
                return
            started = time.perf_counter()
            await self._ingest(scope, proto, batch=path == BATCH_PATH)
            metrics.REQUEST_SECONDS.labels(path).observe(time.perf_counter() - started)
            return
        if method not in ("GET", "HEAD"):
            if path in self._read_paths or path in self._docs or path == "/docs/":
                self._answer(
                    proto,
                    "other",
                    405,
                    _problem("method_not_allowed", "use GET"),
                    [("allow", "GET, HEAD")],
                )
            else:
                self._answer(proto, "other", 404, _problem("not_found", f"no such path: {path}"))
            return
        if path == "/healthz":
            self._answer(proto, path, 200, b'{"status":"ok"}')
        elif path == "/readyz":
            ready = self.sink is not None and self.sink.available
            status = self.sink.status if self.sink is not None else "starting"
            body = ingest.dumps({"status": "ready" if ready else "not ready", "kafka": status})
            self._answer(proto, path, 200 if ready else 503, body)
        elif path == "/metrics":
            text, kind = metrics.render()
            self._answer(proto, path, 200, text, content_type=kind)
        elif path == "/openapi.json":
            self._answer(proto, path, 200, self._openapi)
        elif path in self._docs or path == "/docs/":
            content, kind = self._docs[path.rstrip("/")]
            self._answer(proto, "/docs", 200, content, content_type=kind)
        else:
            self._answer(proto, "other", 404, _problem("not_found", f"no such path: {path}"))

    def _answer(
        self,
        proto: Transport,
        endpoint: str,
        status: int,
        body: bytes,
        extra: Headers | None = None,
        *,
        content_type: str = JSON,
    ) -> None:
        headers = [("content-type", content_type)]
        if extra:
            headers.extend(extra)
        proto.response_bytes(status, headers, body)
        metrics.REQUESTS.labels(endpoint, str(status)).inc()

    def _refuse(
        self,
        proto: Transport,
        endpoint: str,
        status: int,
        code: str,
        message: str,
        *,
        extra: Headers | None = None,
    ) -> None:
        metrics.REJECTS.labels(code).inc()
        self._answer(proto, endpoint, status, _problem(code, message), extra)

    # -- ingestion ---------------------------------------------------------------------------

    async def _ingest(self, scope: Scope, proto: Transport, *, batch: bool) -> None:
        endpoint = BATCH_PATH if batch else EVENTS_PATH
        headers = scope.headers
        key = api_key(headers) if self.api_keys or self.buckets is not None else None
        if self.api_keys and key not in self.api_keys:
            self._refuse(
                proto,
                endpoint,
                401,
                "unauthorized",
                "an API key is required: X-API-Key or Authorization: Bearer",
                extra=[("www-authenticate", 'Bearer realm="eventfleet"')],
            )
            return
        if self.buckets is not None:
            client = f"key:{key}" if key else f"ip:{client_ip(scope.client)}"
            decision = self.buckets.take(client, self._clock())
            if not decision.allowed:
                self._refuse(
                    proto,
                    endpoint,
                    429,
                    "rate_limited",
                    f"over {self.settings.rate_limit_per_second:g} requests/s "
                    f"(burst {self.settings.rate_limit_burst})",
                    extra=[("retry-after", str(decision.retry_after_seconds))],
                )
                return
        kind = headers.get("content-type") or ""
        if kind.split(";", 1)[0].strip().lower() != JSON:
            self._refuse(
                proto,
                endpoint,
                415,
                "unsupported_media_type",
                f"the content type must be {JSON}, not {kind or 'missing'!r}",
            )
            return
        limit = self.settings.max_batch_bytes if batch else self.settings.max_event_bytes
        try:
            body = await read_body(headers, proto, limit)
        except TooLarge:
            self._refuse(proto, endpoint, 413, "too_large", f"the body is over {limit} bytes")
            return
        now = datetime.now(UTC)
        try:
            decoded = (
                ingest.decode_batch(
                    body,
                    now=now,
                    limits=self.limits,
                    max_events=self.settings.max_batch_events,
                    new_id=self._new_id,
                )
                if batch
                else ingest.decode_single(body, now=now, limits=self.limits, new_id=self._new_id)
            )
        except Exception as error:
            # The parsers never raise (tests/unit/contract/test_parser_properties.py); if one
            # still does, the body is refused, nothing is produced, and the alert on the
            # internal_error reject reason points at the bug.
            log.exception("a request body raised while being decoded; refused")
            decoded = BodyError(
                400,
                "internal_error",
                f"the gateway could not read this body ({type(error).__name__}); "
                "nothing was accepted",
            )
        if isinstance(decoded, BodyError):
            metrics.REJECTS.labels(decoded.code).inc()
            self._answer(
                proto,
                endpoint,
                decoded.status,
                ingest.error_body(decoded.code, decoded.message, decoded.errors),
            )
            return
        await self._produce(scope, proto, endpoint, decoded, batch=batch)

    async def _produce(
        self, scope: Scope, proto: Transport, endpoint: str, decoded: Decoded, *, batch: bool
    ) -> None:
        for refused in decoded.refused:
            metrics.REJECTS.labels(str(refused.rejection.reason)).inc()
        if decoded.refused:
            metrics.EVENTS.labels("rejected").inc(len(decoded.refused))
        atomic = batch and query_flag(scope.query_string, "atomic")
        if not decoded.ready or (atomic and decoded.refused):
            total = len(decoded.ready) + len(decoded.refused)
            body = (
                ingest.batch_rejected_body(decoded.refused, atomic=atomic, total=total)
                if batch
                else ingest.single_rejected_body(decoded.refused[0])
            )
            self._answer(proto, endpoint, 400, body)
            return
        retry = [("retry-after", self._retry_after)]
        if self.sink is None:
            self._refuse(proto, endpoint, 503, "unavailable", "starting up", extra=retry)
            return
        try:
            pending = self.sink.send(decoded.ready)
            await self.sink.wait(pending)
        except Unavailable as error:
            metrics.EVENTS.labels("failed").inc(len(decoded.ready))
            self._refuse(proto, endpoint, 503, "unavailable", str(error), extra=retry)
            return
        if pending.failed:
            self._unacknowledged(proto, endpoint, decoded.ready, pending, retry)
            return
        metrics.EVENTS.labels("accepted").inc(len(decoded.ready))
        ids = [ready.event_id for ready in decoded.ready]
        self._answer(proto, endpoint, 202, ingest.accepted_body(ids, decoded.refused))

    def _unacknowledged(
        self,
        proto: Transport,
        endpoint: str,
        ready: tuple[Ready, ...],
        pending: Pending,
        retry: Headers,
    ) -> None:
        """Kafka refused some events: 503, naming the ones it did take (retrying the batch
        with the same event_ids lets the consumers drop the duplicates)."""
        failed = {position for position, _ in pending.failed}
        delivered = [r.event_id for i, r in enumerate(ready) if i not in failed]
        metrics.EVENTS.labels("accepted").inc(len(delivered))
        metrics.REJECTS.labels("unavailable").inc()
        errors = sorted({error for _, error in pending.failed})
        body = ingest.dumps(
            {
                "error": "unavailable",
                "message": f"Kafka did not take {len(failed)} of {len(ready)} events "
                f"({', '.join(errors)})",
                "delivered_event_ids": delivered,
                "failed": [
                    {"index": ready[position].at, "event_id": ready[position].event_id}
                    for position in sorted(failed)
                ],
            }
        )
        self._answer(proto, endpoint, 503, body, retry)


def _kafka_sink(settings: Settings, loop: asyncio.AbstractEventLoop) -> Sink:
    sink = KafkaSink(settings, loop)
    sink.start()
    return sink


def _problem(code: str, message: str) -> bytes:
    return ingest.error_body(code, message)
