"""KafkaSink's bookkeeping with a stand-in for confluent_kafka's Producer: delivery reports
resolve the right request, failures name the right events, the queue wait is bounded and the
safety-net expiry fires. tests/integration/gateway runs the real producer against Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from eventfleet.contract.events import Event, ParseLimits, parse_event
from eventfleet.gateway import ingest, producer
from eventfleet.gateway.ingest import Ready
from eventfleet.gateway.producer import KafkaSink, Pending, Unavailable
from eventfleet.gateway.settings import Settings


class FakeError:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


class FakeMessage:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value


class FakeProducer:
    """Keeps what was produced; `deliver()` plays Kafka's reports, `poll()` serves them."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.produced: list[tuple[bytes, Callable[[Any, Any], None]]] = []
        self.reports: list[tuple[Callable[[Any, Any], None], Any, Any]] = []

    def produce(
        self, topic: str, value: bytes, key: bytes, on_delivery: Callable[[Any, Any], None]
    ) -> None:
        del topic, key
        self.produced.append((value, on_delivery))

    def deliver(self, failures: dict[int, str] | None = None) -> None:
        for index, (value, callback) in enumerate(self.produced):
            failure = (failures or {}).get(index)
            error = FakeError(failure) if failure else None
            self.reports.append((callback, error, FakeMessage(value)))
        self.produced.clear()

    def poll(self, _timeout: float) -> int:
        served, self.reports = self.reports, []
        for callback, error, message in served:
            callback(error, message)
        return len(served)

    def __len__(self) -> int:
        return len(self.produced) + len(self.reports)

    def flush(self, _timeout: float) -> int:
        return 0


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def make_sink(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> tuple[KafkaSink, FakeProducer]:
    monkeypatch.setattr(producer, "Producer", FakeProducer)
    sink = KafkaSink(Settings(**settings), loop)
    sink.available = True
    fake: FakeProducer = sink._producer  # type: ignore[assignment]
    return sink, fake


def ready(count: int) -> tuple[Ready, ...]:
    return tuple(Ready(i, f"id-{i}", b"player", f'{{"n":{i}}}'.encode()) for i in range(count))


def test_reports_resolve_the_request_once_all_its_events_are_answered(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, fake = make_sink(loop, monkeypatch)
    pending = sink.send(ready(3))
    assert len(fake.produced) == 3
    assert not pending.future.done()
    fake.deliver()
    sink._tick()
    assert pending.future.done()
    assert pending.failed == []
    loop.run_until_complete(sink.wait(pending))


def test_failures_name_their_positions_even_for_identical_payloads(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, fake = make_sink(loop, monkeypatch)
    same = Ready(0, "x", b"p", b'{"same":1}')
    events = (*ready(2), same._replace(at=2), same._replace(at=3))
    pending = sink.send(events)
    fake.deliver({1: "_MSG_TIMED_OUT", 2: "_MSG_TIMED_OUT", 3: "_MSG_TIMED_OUT"})
    sink._tick()
    assert sorted(pending.failed) == [
        (1, "_MSG_TIMED_OUT"),
        (2, "_MSG_TIMED_OUT"),
        (3, "_MSG_TIMED_OUT"),
    ]


def test_a_request_is_refused_at_once_while_the_oldest_waited_too_long(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, fake = make_sink(loop, monkeypatch, max_queue_wait_ms=200)
    first = sink.send(ready(1))
    sink.send(ready(1))  # young enough: admitted
    first.started -= 0.5  # Kafka has not answered the oldest for 500 ms
    with pytest.raises(Unavailable, match="Kafka is behind"):
        sink.send(ready(1))
    fake.deliver()
    sink._tick()  # Kafka caught up: admitted again
    sink.send(ready(1))


def test_an_unanswered_request_expires_after_the_delivery_timeout(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, _fake = make_sink(loop, monkeypatch, delivery_timeout_ms=1000)
    old, young = sink.send(ready(1)), sink.send(ready(1))
    old.started -= sink.wait_seconds + 0.1
    sink._tick()
    assert old.future.done()
    assert old.timed_out
    assert not young.future.done()
    with pytest.raises(Unavailable, match="in time"):
        loop.run_until_complete(sink.wait(old))


def test_fire_and_forget_answers_once_queued(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, fake = make_sink(loop, monkeypatch, ack_mode="fire-and-forget")
    pending = sink.send(ready(2))
    assert pending.future.done()
    fake.deliver({0: "_MSG_TIMED_OUT"})
    sink._tick()
    assert pending.failed == [(0, "_MSG_TIMED_OUT")]


def test_pending_is_the_delivery_callback() -> None:
    loop = asyncio.new_event_loop()
    try:
        pending = Pending(loop.create_future(), 2, 0.0, ready(2))
        message: Any = FakeMessage(b"")
        pending(None, message)
        assert not pending.future.done()
        pending(None, message)
        assert pending.future.done()
    finally:
        loop.close()


# -- the encoded event is exactly Event.to_json_dict() --------------------------------------

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LIMITS = ParseLimits()


@pytest.mark.parametrize(
    "body",
    [
        (
            b'{"event_type":"purchase","player_id":"p","game_id":"g",'
            b'"timestamp":"2026-11-27T09:30:00Z","data":{"amount":"12.50","currency":"EUR",'
            b'"extra":[1,{"a":null}]}}'
        ),
        (
            b'{"event_type":"purchase","player_id":"p","game_id":"g",'
            b'"timestamp":"2026-11-27T10:30:00.123+01:00","data":{"amount":3,"currency":"EUR"}}'
        ),
        (
            b'{"event_type":"custom_thing","player_id":"p","game_id":"g",'
            b'"timestamp":"2026-11-26T10:30:00.000001-05:30",'
            b'"data":{"big":123456789012345678901234567890,"s":"\\ud800"}}'
        ),
        (
            b'{"event_type":"match_completed","player_id":"p","game_id":"g",'
            b'"timestamp":"2026-11-27T09:30:00Z","event_id":"0190a0a0-0000-7000-8000-000000000000",'
            b'"data":{"score":1,"won":false}}'
        ),
    ],
)
def test_the_payload_is_the_shared_models_json(body: bytes) -> None:
    event = parse_event(body, now=NOW, limits=LIMITS)
    assert isinstance(event, Event)
    outcome = ingest.encode(event, 0, LIMITS, lambda: "new-id")
    assert isinstance(outcome, Ready)
    expected = event.to_json_dict()
    if expected["event_id"] is None:
        expected["event_id"] = "new-id"
    assert outcome.payload == ingest.dumps(expected)
    assert outcome.event_id == expected["event_id"]
    if "amount" in expected["data"]:
        assert isinstance(event.data["amount"], Decimal)
        assert isinstance(orjson.loads(outcome.payload)["data"]["amount"], str)
