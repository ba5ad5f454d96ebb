"""The gateway over real HTTP against the local stack's Kafka (tests/fixtures/stack.py).

Kafka outages are made with a loopback TCP proxy (or a silent listener) between the gateway and
the shared broker: the shared Kafka itself is never stopped. The proxy serves the bootstrap
connection; the broker then advertises its own address, so the tests cover "unreachable at the
start → 503, reachable → recovery" and "a broker that hangs → 503, not a hang", not a broker
dying under an established connection.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventfleet.contract.events import Event, parse_event
from tests.fixtures.gateway_topic import GatewayTopic
from tests.fixtures.net import TcpProxy, free_port
from tests.integration.gateway.harness import silent_listener

pytestmark = pytest.mark.integration

EVENTS = "/api/v1/events"
BATCH = "/api/v1/events/batch"
JSON = {"content-type": "application/json"}


def now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def event(player: str = "player-1", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_type": "match_completed",
        "player_id": player,
        "game_id": "game-1",
        "timestamp": now_text(),
        "data": {"score": 100, "won": True, "kills": 3},
    }
    base.update(changes)
    return base


def test_every_status_with_its_body(gateway_topic: GatewayTopic) -> None:
    with gateway_topic.gateway("--api-keys", "k1", "--max-event-bytes", "2048") as gateway:
        key = {"x-api-key": "k1"}
        ok = gateway.post(EVENTS, event(), key)
        assert ok.status == 202, ok.body
        assert ok.json()["accepted"] == 1

        bad = gateway.post(EVENTS, event(player_id="", data={"score": "x", "won": True}), key)
        assert bad.status == 400
        assert bad.json()["error"] == "invalid_field"
        assert bad.json()["errors"] == [
            {"field": "player_id", "message": bad.json()["errors"][0]["message"]}
        ]
        bad_data = gateway.post(EVENTS, event(data={"score": "x", "won": 1}), key)
        assert {e["field"] for e in bad_data.json()["errors"]} == {"data.score", "data.won"}

        missing_key = gateway.post(EVENTS, event())
        assert (missing_key.status, missing_key.json()["error"]) == (401, "unauthorized")

        huge = gateway.post(EVENTS, event(data={"score": 1, "won": True, "x": "y" * 5000}), key)
        assert (huge.status, huge.json()["error"]) == (413, "too_large")

        text = gateway.request("POST", EVENTS, b"{}", {"content-type": "text/plain", **key})
        assert (text.status, text.json()["error"]) == (415, "unsupported_media_type")

        assert gateway.request("GET", EVENTS).status == 405
        assert gateway.request("GET", "/nowhere").status == 404
        ready = gateway.request("GET", "/readyz")
        assert ready.status == 200
        assert gateway_topic.topic in ready.json()["kafka"]

        metrics = gateway.request("GET", "/metrics").body.decode()
        assert 'eventfleet_gateway_rejects_total{reason="invalid_field"}' in metrics
        assert 'eventfleet_gateway_events_total{outcome="accepted"} 1.0' in metrics
        assert "eventfleet_gateway_produce_latency_seconds_count 1.0" in metrics

        spec = gateway.request("GET", "/openapi.json").json()
        assert set(spec["paths"]) >= {EVENTS, BATCH, "/healthz", "/readyz", "/metrics"}
        docs = gateway.request("GET", "/docs")
        assert docs.status == 200
        assert b"swagger-ui-bundle.js" in docs.body
        assert gateway.request("GET", "/docs/swagger-ui-bundle.js").status == 200


def test_kafka_holds_exactly_the_accepted_events_keyed_by_player(
    gateway_topic: GatewayTopic,
) -> None:
    accepted: dict[str, str] = {}  # event_id -> player
    with gateway_topic.gateway() as gateway:
        for number in range(10):
            answer = gateway.post(EVENTS, event(player=f"p{number % 4}"))
            assert answer.status == 202
            accepted[answer.json()["event_ids"][0]] = f"p{number % 4}"
        assert gateway.post(EVENTS, event(player="bad player")).status == 400

        items: list[object] = [
            event(player="b1"),
            event(player="b2", event_type="purchase", data={"amount": "x", "currency": "EU"}),
            event(player="b3", event_type="player_level_up", data={"level": 2}),
            "not an event",
            event(player="b4", timestamp=(datetime.now(UTC) + timedelta(days=1)).isoformat()),
            event(player="b5", event_type="purchase", data={"amount": 9.99, "currency": "EUR"}),
        ]
        mixed = gateway.post(BATCH, items)
        assert mixed.status == 202
        reply = mixed.json()
        assert reply["accepted"] == 3
        assert [r["index"] for r in reply["rejected"]] == [1, 3, 4]
        assert {e["field"] for e in reply["rejected"][0]["errors"]} == {
            "data.amount",
            "data.currency",
        }
        accepted.update(zip(reply["event_ids"], ["b1", "b3", "b5"], strict=True))

        atomic = gateway.post(BATCH + "?atomic=true", [event(player="a1"), {"player_id": "a2"}])
        assert atomic.status == 400
        assert atomic.json()["accepted"] == 0

    records = gateway_topic.records(expected=len(accepted))
    assert len(records) == len(accepted)
    seen = {}
    for key, value in records:
        seen[value["event_id"]] = value["player_id"]
        assert key == value["player_id"].encode()
        parsed = parse_event(json.dumps(value).encode(), now=datetime.now(UTC))
        assert isinstance(parsed, Event)  # what the consumers will read is valid
    assert seen == accepted


def test_rate_limit_is_enforced_per_client(gateway_topic: GatewayTopic) -> None:
    flags = ("--rate-limit-per-second", "0.5", "--rate-limit-burst", "3")
    keys = ("--api-keys", "a", "--api-keys", "b")
    with gateway_topic.gateway(*flags, *keys) as gateway:
        statuses = [gateway.post(EVENTS, event(), {"x-api-key": "a"}).status for _ in range(5)]
        assert statuses == [202, 202, 202, 429, 429]
        limited = gateway.post(EVENTS, event(), {"x-api-key": "a"})
        assert limited.status == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"] == "rate_limited"
        assert gateway.post(EVENTS, event(), {"x-api-key": "b"}).status == 202


def test_a_full_producer_queue_is_503_and_produces_nothing(gateway_topic: GatewayTopic) -> None:
    with gateway_topic.gateway("--queue-max-messages", "100") as gateway:
        full = gateway.post(BATCH, [event(player=f"q{n}") for n in range(150)])
        assert full.status == 503
        assert full.headers["retry-after"] == "1"
        assert "queue is full" in full.json()["message"]
        assert gateway.post(BATCH, [event(player="fits")]).status == 202
    records = gateway_topic.records(expected=1)
    assert [value["player_id"] for _, value in records] == ["fits"]


def test_unreachable_kafka_is_503_then_recovers(gateway_topic: GatewayTopic) -> None:
    host, port = gateway_topic.stack.kafka_bootstrap.rsplit(":", 1)
    proxy = TcpProxy((host, int(port)), free_port())
    bootstrap = f"127.0.0.1:{proxy.port}"
    with gateway_topic.gateway(
        "--retry-after-seconds", "2", bootstrap=bootstrap, wait="alive"
    ) as gateway:
        started = time.monotonic()
        down = gateway.post(EVENTS, event())
        assert time.monotonic() - started < 10  # answered, not hung
        assert down.status == 503
        assert down.headers["retry-after"] == "2"
        assert down.json()["error"] == "unavailable"
        assert gateway.request("GET", "/readyz").status == 503
        assert gateway.request("GET", "/healthz").status == 200

        proxy.start()
        try:
            gateway.wait_ready(timeout=30)
            up = gateway.post(EVENTS, event(player="after"))
            assert up.status == 202
        finally:
            proxy.stop()
    records = gateway_topic.records(expected=1)
    assert [value["player_id"] for _, value in records] == ["after"]


def test_a_hung_broker_is_503_not_a_hang(gateway_topic: GatewayTopic) -> None:
    port = free_port()
    with (
        silent_listener(port),
        gateway_topic.gateway(
            "--delivery-timeout-ms", "2000", bootstrap=f"127.0.0.1:{port}", wait="alive"
        ) as gateway,
    ):
        started = time.monotonic()
        answers = [gateway.post(EVENTS, event()).status for _ in range(3)]
        assert answers == [503, 503, 503]
        assert time.monotonic() - started < 15


def test_shutdown_flushes_what_was_accepted(gateway_topic: GatewayTopic) -> None:
    with gateway_topic.gateway("--ack-mode", "fire-and-forget") as gateway:
        ids: list[str] = []
        for number in range(20):
            answer = gateway.post(BATCH, [event(player=f"s{number}-{i}") for i in range(50)])
            assert answer.status == 202
            ids += answer.json()["event_ids"]
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(timeout=30) == 0, gateway.output()
    records = gateway_topic.records(expected=len(ids))
    assert sorted(value["event_id"] for _, value in records) == sorted(ids)


def encoded(**changes: Any) -> bytes:
    return json.dumps(event(**changes)).encode()


def _bad_bodies() -> list[tuple[str, bytes]]:
    good = encoded()
    return [
        ("empty", b""),
        ("whitespace", b"   \n"),
        ("null", b"null"),
        ("true", b"true"),
        ("number", b"42"),
        ("string", b'"event"'),
        ("array for single", b"[]"),
        ("truncated", good[:-5]),
        ("trailing garbage", good + b"xyz"),
        ("trailing comma", b'{"event_type": "x",}'),
        ("single quotes", b"{'event_type': 'x'}"),
        ("NaN", b'{"x": NaN}'),
        ("Infinity", good.replace(b"100", b"Infinity")),
        ("huge integer", good.replace(b"100", b"9" * 5000)),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
        ("deep object", b'{"a":' * 20_000 + b"1" + b"}" * 20_000),
        (
            "deep data",
            good.replace(b'"data": {', b'"data": {"n": ' + b"[" * 5000 + b"]" * 5000 + b","),
        ),
        ("non-UTF-8", b'{"player_id": "\xff\xfe"}'),
        ("latin-1", json.dumps(event()).replace("player-1", "pl\u00e4yer").encode("latin-1")),
        ("UTF-16", json.dumps(event()).encode("utf-16")),
        ("BOM", b"\xef\xbb\xbf" + good),
        ("NUL bytes", b"\x00" * 100),
        ("lone surrogate", good.replace(b"player-1", b"\\ud800")),
        ("huge string", good.replace(b"game-1", b"g" * 60_000)),
        ("player id too long", good.replace(b"player-1", b"p" * 129)),
        ("wrong types", encoded(player_id=5, game_id=None, timestamp=1)),
        ("data not object", encoded(data=[1, 2])),
        ("score bool", encoded(data={"score": True, "won": True})),
        ("score float", encoded(data={"score": 1.5, "won": True})),
        ("negative level", encoded(event_type="player_level_up", data={"level": -1})),
        ("bad event type", encoded(event_type="Drop Table")),
        ("bad uuid", encoded(event_id="not-a-uuid")),
        ("numeric uuid", encoded(event_id=123)),
        ("bad timestamp", encoded(timestamp="2026-13-45T99:99:99Z")),
        ("February 30", encoded(timestamp="2026-02-30T00:00:00Z")),
        ("year overflow", encoded(timestamp="9999-12-31T23:59:59-23:59")),
        ("no offset", encoded(timestamp="2026-11-27T09:00:00")),
        ("ancient", encoded(timestamp="1970-01-01T00:00:00Z")),
        (
            "amount NaN text",
            encoded(event_type="purchase", data={"amount": "NaN", "currency": "EUR"}),
        ),
        (
            "amount too precise",
            encoded(event_type="purchase", data={"amount": "1.00001", "currency": "EUR"}),
        ),
        ("over the size limit", b'{"x":"' + b"a" * 2_000_000 + b'"}'),
        # The 1.3 KB event that once crash-looped every consumer and got a 500 here.
        (
            "nested 600 deep",
            encoded(data={"score": 1, "won": True, "x": 0}).replace(
                b'"x": 0', b'"x": ' + b"[" * 600 + b"1" + b"]" * 600
            ),
        ),
        (
            "nested 33 deep",
            encoded().replace(b'"data": {', b'"data": {"x": ' + b"[" * 31 + b"]" * 31 + b", ", 1),
        ),
        (
            "duplicate event_type",
            encoded().replace(b'"event_type"', b'"event_type": "purchase", "event_type"', 1),
        ),
    ]


def test_bad_bodies_are_4xx_never_5xx(gateway_topic: GatewayTopic) -> None:
    corpus = _bad_bodies()
    assert len(corpus) >= 30
    with gateway_topic.gateway() as gateway:
        outcomes = {}
        for name, body in corpus:
            for path in (EVENTS, BATCH):
                payload = body if path == EVENTS else b"[" + body + b"]" if body else body
                answer = gateway.request("POST", path, payload, JSON)
                outcomes[(name, path)] = answer.status
                assert 400 <= answer.status < 500, (name, path, answer.status, answer.body[:300])
                assert "error" in answer.json(), (name, path)
        assert gateway.process.poll() is None, gateway.output()
        assert gateway.request("GET", "/healthz").status == 200
        assert gateway.post(EVENTS, event(player="still-fine")).status == 202
    records = gateway_topic.records(expected=1)
    assert [value["player_id"] for _, value in records] == ["still-fine"]
