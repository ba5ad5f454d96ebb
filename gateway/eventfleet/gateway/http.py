"""The request side of the gateway's RSGI application: what granian hands a handler (the
protocols, so that tests drive the app without a server) and the readers of a request: its API
key, the client's address, a query flag, the body within its size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

Headers = list[tuple[str, str]]


class HeaderMap(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


class Scope(Protocol):
    """What the app reads of granian's RSGI scope (a fake one serves the unit tests)."""

    @property
    def proto(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def client(self) -> str: ...
    @property
    def headers(self) -> HeaderMap: ...


class Transport(Protocol):
    def __call__(self) -> Awaitable[bytes]: ...
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def response_bytes(self, status: int, headers: Headers, body: bytes) -> None: ...


class TooLarge(Exception):  # noqa: N818 - control flow, never escapes the app
    pass


def api_key(headers: HeaderMap) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return str(key)
    authorization = str(headers.get("authorization") or "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def client_ip(client: str) -> str:
    host, sep, port = client.rpartition(":")
    return host if sep and port.isdigit() else client


def query_flag(query: str, name: str) -> bool:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == name:
            return value.lower() in ("", "1", "true", "yes")
    return False


async def read_body(headers: HeaderMap, proto: Transport, limit: int) -> bytes:
    length = headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            declared = -1
        if declared > limit:
            raise TooLarge
        if declared >= 0:
            body = await proto()
            if len(body) > limit:
                raise TooLarge
            return body
    # Chunked (or odd) bodies: read in pieces, stop at the limit.
    chunks: list[bytes] = []
    size = 0
    async for chunk in proto:
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)
