"""The benchmark's ceiling: the gateway's server stack (granian RSGI, same workers) with an app
that only reads and parses the JSON body, then answers 202. hack/bench-gateway measures the
gateway beside it in the same run."""

from __future__ import annotations

import json

from eventfleet.gateway.http import Scope, Transport

ANSWER = b'{"accepted":1}'


async def app(scope: Scope, proto: Transport) -> None:
    if scope.proto != "http":
        return
    if scope.method != "POST":
        proto.response_bytes(200, [("content-type", "application/json")], b"{}")
        return
    body = await proto()
    try:
        json.loads(body)
    except ValueError:
        proto.response_bytes(400, [("content-type", "application/json")], b'{"error":"x"}')
        return
    proto.response_bytes(202, [("content-type", "application/json")], ANSWER)
