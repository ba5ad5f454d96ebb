from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventfleet.contract.events import Event, parse_event
from tests.unit.gateway.fakes import call, make_gateway

NOW = datetime.now(UTC).replace(microsecond=0)


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_type": "match_completed",
        "player_id": "player-1",
        "game_id": "game-1",
        "timestamp": NOW.isoformat().replace("+00:00", "Z"),
        "data": {"score": 10, "won": True},
    }
    base.update(changes)
    return base


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_one_event_is_produced_keyed_by_player_with_a_uuid7() -> None:
    gateway, sink = make_gateway()
    answer = call(gateway, "POST", "/api/v1/events", body(event()))
    assert answer.status == 202
    ids = answer.json()["event_ids"]
    assert answer.json()["accepted"] == 1
    assert len(sink.sent) == 1
    produced = sink.sent[0]
    assert produced.key == b"player-1"
    assert produced.event_id == ids[0]
    parsed = parse_event(produced.payload, now=NOW)
    assert isinstance(parsed, Event)
    assert parsed.event_id is not None
    assert str(parsed.event_id) == ids[0]
    assert parsed.event_id.version == 7


def test_a_client_event_id_is_kept() -> None:
    gateway, _sink = make_gateway()
    given = "0b3f2c7e-1d7a-4f8e-9b1e-2c3d4e5f6a7b"
    answer = call(gateway, "POST", "/api/v1/events", body(event(event_id=given)))
    assert answer.json()["event_ids"] == [given]


def test_invalid_event_names_each_field() -> None:
    gateway, sink = make_gateway()
    bad = event(player_id="a:b", data={"score": -1, "won": "yes"})
    answer = call(gateway, "POST", "/api/v1/events", body(bad))
    assert answer.status == 400
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"player_id"}  # the envelope is checked first, like the consumers do
    answer = call(gateway, "POST", "/api/v1/events", body(event(data={"score": -1, "won": "x"})))
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_data"
    assert {e["field"] for e in answer.json()["errors"]} == {"data.score", "data.won"}
    assert sink.sent == []


def test_future_timestamp_is_refused() -> None:
    gateway, _ = make_gateway()
    late = (NOW + timedelta(hours=1)).isoformat()
    answer = call(gateway, "POST", "/api/v1/events", body(event(timestamp=late)))
    assert answer.status == 400
    assert answer.json()["error"] == "future_timestamp"


def test_mixed_batch_accepts_the_valid_and_lists_the_invalid() -> None:
    gateway, sink = make_gateway()
    items = [event(player_id="p1"), event(player_id=""), event(player_id="p3"), 7]
    answer = call(gateway, "POST", "/api/v1/events/batch", body(items))
    assert answer.status == 202
    reply = answer.json()
    assert reply["accepted"] == 2
    assert [r["index"] for r in reply["rejected"]] == [1, 3]
    assert reply["rejected"][0]["errors"][0]["field"] == "player_id"
    assert reply["rejected"][1]["error"] == "not_an_object"
    assert [s.key for s in sink.sent] == [b"p1", b"p3"]
    assert [s.event_id for s in sink.sent] == reply["event_ids"]


def test_atomic_batch_rejects_all_on_one_bad_item() -> None:
    gateway, sink = make_gateway()
    items = [event(), event(timestamp="yesterday")]
    answer = call(gateway, "POST", "/api/v1/events/batch", body(items), query="atomic=true")
    assert answer.status == 400
    assert answer.json()["accepted"] == 0
    assert answer.json()["rejected"][0]["index"] == 1
    assert sink.sent == []


def test_batch_with_no_valid_item_is_400() -> None:
    gateway, _sink = make_gateway()
    answer = call(gateway, "POST", "/api/v1/events/batch", body([{}, []]))
    assert answer.status == 400
    assert len(answer.json()["rejected"]) == 2


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"[]", 400, "empty_batch"),
        (b"{}", 400, "not_an_array"),
        (b"[", 400, "invalid_json"),
        (b"\xff[]", 400, "not_utf8"),
        (b"[" + b"{}," * 600 + b"{}]", 413, "too_many_events"),
    ],
)
def test_batch_body_errors(payload: bytes, status: int, code: str) -> None:
    gateway, _ = make_gateway()
    answer = call(gateway, "POST", "/api/v1/events/batch", payload)
    assert (answer.status, answer.json()["error"]) == (status, code)


def test_size_limits_are_413_declared_or_streamed() -> None:
    gateway, sink = make_gateway(max_event_bytes=1024, max_batch_bytes=4096)
    big = body(event(data={"score": 1, "won": True, "note": "x" * 2000}))
    answer = call(gateway, "POST", "/api/v1/events", big)
    assert (answer.status, answer.json()["error"]) == (413, "too_large")
    answer = call(gateway, "POST", "/api/v1/events/batch", body([event()] * 40), chunked=True)
    assert answer.status == 413
    assert sink.sent == []


def test_an_event_too_large_once_encoded_is_refused() -> None:
    gateway, _ = make_gateway(max_event_bytes=400)
    # Fits as sent; the added event_id pushes the encoded form over the consumers' limit.
    item = event(data={"score": 1, "won": True, "n": "x" * 230})
    assert len(body(item)) < 400
    answer = call(gateway, "POST", "/api/v1/events", body(item))
    assert (answer.status, answer.json()["error"]) == (400, "too_large")


@pytest.mark.parametrize("kind", ["text/plain", "", "application/jsonx", "multipart/form-data"])
def test_wrong_content_type_is_415(kind: str) -> None:
    gateway, _ = make_gateway()
    answer = call(gateway, "POST", "/api/v1/events", body(event()), {"content-type": kind})
    assert (answer.status, answer.json()["error"]) == (415, "unsupported_media_type")


def test_content_type_parameters_are_fine() -> None:
    gateway, _ = make_gateway()
    headers = {"content-type": "Application/JSON; charset=utf-8"}
    assert call(gateway, "POST", "/api/v1/events", body(event()), headers).status == 202


def test_api_keys() -> None:
    gateway, _sink = make_gateway(api_keys=("sekret",))
    assert call(gateway, "POST", "/api/v1/events", body(event())).status == 401
    wrong = call(gateway, "POST", "/api/v1/events", body(event()), {"x-api-key": "nope"})
    assert (wrong.status, wrong.json()["error"]) == (401, "unauthorized")
    ok = call(gateway, "POST", "/api/v1/events", body(event()), {"x-api-key": "sekret"})
    assert ok.status == 202
    bearer = {"authorization": "Bearer sekret"}
    assert call(gateway, "POST", "/api/v1/events", body(event()), bearer).status == 202
    assert call(gateway, "GET", "/healthz").status == 200  # probes stay open


def test_rate_limit_per_ip_with_retry_after() -> None:
    clock = [100.0]
    gateway, _ = make_gateway(rate_limit_per_second=1, rate_limit_burst=2)
    gateway._clock = lambda: clock[0]
    statuses = [call(gateway, "POST", "/api/v1/events", body(event())).status for _ in range(3)]
    assert statuses == [202, 202, 429]
    limited = call(gateway, "POST", "/api/v1/events", body(event()))
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"] == "rate_limited"
    other = call(gateway, "POST", "/api/v1/events", body(event()), client="10.9.9.9:1")
    assert other.status == 202
    clock[0] += 1.0
    assert call(gateway, "POST", "/api/v1/events", body(event())).status == 202


def test_kafka_unavailable_is_503_with_retry_after() -> None:
    gateway, sink = make_gateway(retry_after_seconds=3)
    sink.available = False
    sink.status = "Kafka unreachable"
    answer = call(gateway, "POST", "/api/v1/events", body(event()))
    assert (answer.status, answer.headers["retry-after"]) == (503, "3")
    assert answer.json() == {"error": "unavailable", "message": "Kafka unreachable"}
    assert call(gateway, "GET", "/readyz").status == 503
    sink.available = True
    assert call(gateway, "POST", "/api/v1/events", body(event())).status == 202
    assert call(gateway, "GET", "/readyz").status == 200


def test_partly_undelivered_batch_is_503_naming_the_delivered() -> None:
    gateway, sink = make_gateway()
    sink.fail_positions = {1}
    answer = call(gateway, "POST", "/api/v1/events/batch", body([event(), event(), event()]))
    assert answer.status == 503
    reply = answer.json()
    assert len(reply["delivered_event_ids"]) == 2
    assert reply["failed"][0]["index"] == 1


def test_routing_errors() -> None:
    gateway, _ = make_gateway()
    assert call(gateway, "GET", "/api/v1/events").status == 405
    assert call(gateway, "POST", "/healthz").status == 405
    assert call(gateway, "GET", "/nope").status == 404
    assert call(gateway, "POST", "/nope", body(event())).status == 404
    assert call(gateway, "DELETE", "/api/v1/nope").status == 404


POISON_DATA = {"score": 1, "won": True, "extra": "NEST"}


@pytest.mark.parametrize("depth", [40, 600, 5000])
@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/batch"])
def test_deeply_nested_bodies_are_refused_with_400_not_500(depth: int, path: str) -> None:
    gateway, sink = make_gateway()
    payload = event(event_type="match_completed", data=POISON_DATA)
    raw = body([payload] if path.endswith("batch") else payload)
    raw = raw.replace(b'"NEST"', b"[" * depth + b"1" + b"]" * depth)
    answer = call(gateway, "POST", path, raw)
    assert answer.status == 400
    assert "too_deep" in answer.response.decode()
    assert not sink.sent


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/batch"])
def test_duplicate_keys_are_refused_with_400(path: str) -> None:
    gateway, sink = make_gateway()
    raw = body(event(event_type="player_login")).replace(
        b'"event_type"', b'"event_type":"purchase","event_type"', 1
    )
    if path.endswith("batch"):
        raw = b"[" + raw + b"]"
    answer = call(gateway, "POST", path, raw)
    assert answer.status == 400
    assert "duplicate_key" in answer.response.decode()
    assert not sink.sent


def test_docs_and_openapi_are_served_locally() -> None:
    gateway, _ = make_gateway()
    page = call(gateway, "GET", "/docs")
    assert page.status == 200
    assert b"/docs/swagger-ui-bundle.js" in page.response
    assert b"http" not in page.response.replace(b"http-equiv", b"")  # nothing from a CDN
    script = call(gateway, "GET", "/docs/swagger-ui-bundle.js")
    assert script.status == 200
    assert len(script.response) > 100_000
    spec = call(gateway, "GET", "/openapi.json").json()
    assert spec["openapi"].startswith("3.0")
    assert "/api/v1/events/batch" in spec["paths"]
    assert "MatchCompletedData" in spec["components"]["schemas"]


def test_metrics_count_rejects_by_reason() -> None:
    gateway, _ = make_gateway()
    call(gateway, "POST", "/api/v1/events", b"{", {})
    text = call(gateway, "GET", "/metrics").response.decode()
    assert 'eventfleet_gateway_rejects_total{reason="invalid_json"}' in text
    assert "eventfleet_gateway_produce_latency_seconds_bucket" in text
    assert 'eventfleet_gateway_requests_total{endpoint="/api/v1/events",status="400"}' in text


def test_shutdown_closes_the_sink() -> None:
    gateway, sink = make_gateway()
    gateway.stop()
    assert sink.closed
    assert gateway.sink is None
