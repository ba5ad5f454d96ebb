"""Stand-ins for granian's RSGI scope and protocol and for the Kafka sink: the app's HTTP
behaviour is tested here without sockets; tests/integration/gateway does it for real."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from eventfleet.gateway.app import Gateway
from eventfleet.gateway.ingest import Ready
from eventfleet.gateway.producer import Pending, Unavailable
from eventfleet.gateway.settings import Settings


class Headers:
    def __init__(self, values: dict[str, str]) -> None:
        self._values = {k.lower(): v for k, v in values.items()}

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key.lower(), default)


@dataclass
class Scope:
    method: str
    path: str
    headers: Headers
    query_string: str = ""
    client: str = "10.1.2.3:5555"
    proto: str = "http"


@dataclass
class Proto:
    body: bytes
    chunked: bool = False
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    response: bytes = b""

    async def _read(self) -> bytes:
        return self.body

    def __call__(self) -> Any:
        return self._read()

    async def _chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), 1000):
            yield self.body[start : start + 1000]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = dict(headers)
        self.response = body

    def json(self) -> Any:
        return json.loads(self.response)


class FakeSink:
    """Acknowledges at once (or fails the events at the given positions)."""

    def __init__(self) -> None:
        self.available = True
        self.status = "fake"
        self.sent: list[Ready] = []
        self.fail_positions: set[int] = set()
        self.refuse: str | None = None
        self.closed = False

    def send(self, ready: tuple[Ready, ...]) -> Pending:
        if not self.available:
            raise Unavailable(self.status)
        if self.refuse:
            raise Unavailable(self.refuse)
        loop = asyncio.get_running_loop()
        pending = Pending(loop.create_future(), 0)
        for position, item in enumerate(ready):
            if position in self.fail_positions:
                pending.failed.append((position, "_MSG_TIMED_OUT"))
            else:
                self.sent.append(item)
        pending.future.set_result(None)
        return pending

    async def wait(self, pending: Pending) -> None:
        await pending.future

    def close(self, flush_seconds: float) -> int:
        del flush_seconds
        self.closed = True
        return 0


def make_gateway(**overrides: Any) -> tuple[Gateway, FakeSink]:
    sink = FakeSink()
    gateway = Gateway(Settings(**overrides), sink_factory=lambda _s, _l: sink)
    gateway.sink = sink
    return gateway, sink


def call(
    gateway: Gateway,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    query: str = "",
    client: str = "10.1.2.3:5555",
    chunked: bool = False,
) -> Proto:
    all_headers = {"content-type": "application/json"}
    if not chunked:
        all_headers["content-length"] = str(len(body))
    all_headers.update(headers or {})
    scope = Scope(method, path, Headers(all_headers), query, client)
    proto = Proto(body, chunked)
    asyncio.run(gateway.__rsgi__(scope, proto))
    return proto
