"""The event contract: what is accepted, what is refused, and what the refusal says."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from eventfleet.contract.events import (
    Event,
    ParseLimits,
    Rejection,
    RejectReason,
    derived_event_id,
    parse_event,
    validate_event,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_type": "match_completed",
        "player_id": "player_42",
        "game_id": "game-1",
        "timestamp": "2026-11-27T11:59:00Z",
        "data": {"score": 120, "won": True, "kills": 3, "deaths": 1},
    }
    base.update(overrides)
    return base


def parse(value: object) -> Event | Rejection:
    return parse_event(json.dumps(value).encode(), now=NOW)


def accepted(value: object) -> Event:
    result = parse(value)
    assert isinstance(result, Event), result
    return result


def refused(value: object) -> Rejection:
    result = parse(value)
    assert isinstance(result, Rejection), result
    return result


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("player_login", {}),
        ("player_login", {"platform": "pc", "session_id": "s-1"}),
        ("player_logout", {"session_seconds": 3600}),
        ("player_level_up", {"level": 1}),
        ("match_completed", {"score": 0, "won": False}),
        ("achievement_unlocked", {"achievement_id": "first_blood"}),
        ("purchase", {"amount": 9.99, "currency": "EUR"}),
        ("purchase", {"amount": "0", "currency": "JPY"}),
        ("guild_joined", {"anything": ["goes", 1]}),  # unknown types are allowed
    ],
)
def test_each_known_type_and_an_unknown_one_are_accepted(
    event_type: str, data: dict[str, Any]
) -> None:
    parsed = accepted(event(event_type=event_type, data=data))
    assert parsed.event_type == event_type
    assert parsed.known == (event_type != "guild_joined")


def test_values_are_normalised() -> None:
    parsed = accepted(
        event(timestamp="2026-11-27T13:30:00.250+02:00", event_id=str(uuid.UUID(int=7)))
    )
    assert parsed.timestamp == datetime(2026, 11, 27, 11, 30, 0, 250000, tzinfo=UTC)
    assert parsed.event_id == uuid.UUID(int=7)
    purchase = accepted(event(event_type="purchase", data={"amount": 9.99, "currency": "EUR"}))
    assert purchase.data["amount"] == Decimal("9.99")


def test_extra_data_keys_are_kept_and_known_ones_checked() -> None:
    parsed = accepted(event(data={"score": 5, "won": True, "map": "dust"}))
    assert parsed.data == {"score": 5, "won": True, "map": "dust"}


def test_missing_data_defaults_to_empty_for_types_without_required_fields() -> None:
    payload = event(event_type="player_login")
    del payload["data"]
    assert accepted(payload).data == {}


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (event(player_id=None), RejectReason.INVALID_FIELD, "player_id"),
        (event(player_id=""), RejectReason.INVALID_FIELD, "player_id"),
        (event(player_id="a:b"), RejectReason.INVALID_FIELD, "player_id"),
        (event(game_id="x" * 129), RejectReason.INVALID_FIELD, "game_id"),
        (event(player_id=42), RejectReason.INVALID_FIELD, "player_id"),
        (event(event_type="Match Completed"), RejectReason.INVALID_FIELD, "event_type"),
        (event(timestamp="2026-11-27"), RejectReason.INVALID_FIELD, "timestamp"),
        (event(timestamp="2026-11-27T11:00:00"), RejectReason.INVALID_FIELD, "timestamp"),
        (event(timestamp=1795770000), RejectReason.INVALID_FIELD, "timestamp"),
        (event(timestamp="1999-12-31T23:59:59Z"), RejectReason.INVALID_FIELD, "timestamp"),
        (event(timestamp="2026-11-27T12:06:00Z"), RejectReason.FUTURE_TIMESTAMP, "timestamp"),
        (event(timestamp="2026-13-45T99:99:99Z"), RejectReason.INVALID_FIELD, "timestamp"),
        (event(timestamp="2026-02-30T00:00:00Z"), RejectReason.INVALID_FIELD, "timestamp"),
        (event(timestamp="9999-12-31T23:59:59-14:00"), RejectReason.INVALID_FIELD, "timestamp"),
        (event(timestamp="0001-01-01T00:00:00+01:00"), RejectReason.INVALID_FIELD, "timestamp"),
        (event(event_id="not-a-uuid"), RejectReason.INVALID_FIELD, "event_id"),
        (event(event_id=12), RejectReason.INVALID_FIELD, "event_id"),
        (event(data=[1, 2]), RejectReason.INVALID_FIELD, "data"),
        (event(data={"won": True}), RejectReason.INVALID_DATA, "data.score"),
        (event(data={"score": -1, "won": True}), RejectReason.INVALID_DATA, "data.score"),
        (event(data={"score": "10", "won": True}), RejectReason.INVALID_DATA, "data.score"),
        (event(data={"score": 1.5, "won": True}), RejectReason.INVALID_DATA, "data.score"),
        (event(data={"score": 2**40, "won": True}), RejectReason.INVALID_DATA, "data.score"),
        (event(data={"score": 1, "won": "yes"}), RejectReason.INVALID_DATA, "data.won"),
        (event(data={"score": 1, "won": 1}), RejectReason.INVALID_DATA, "data.won"),
        (event(data={"score": True, "won": True}), RejectReason.INVALID_DATA, "data.score"),
        (
            event(event_type="player_level_up", data={"level": 0}),
            RejectReason.INVALID_DATA,
            "data.level",
        ),
        (
            event(event_type="purchase", data={"amount": -1, "currency": "EUR"}),
            RejectReason.INVALID_DATA,
            "data.amount",
        ),
        (
            event(event_type="purchase", data={"amount": 1, "currency": "euro"}),
            RejectReason.INVALID_DATA,
            "data.currency",
        ),
        (
            event(event_type="purchase", data={"amount": True, "currency": "EUR"}),
            RejectReason.INVALID_DATA,
            "data.amount",
        ),
        (
            event(event_type="purchase", data={"amount": "1.23456", "currency": "EUR"}),
            RejectReason.INVALID_DATA,
            "data.amount",
        ),
        (
            event(event_type="achievement_unlocked", data={}),
            RejectReason.INVALID_DATA,
            "data.achievement_id",
        ),
    ],
)
def test_invalid_events_name_the_field(payload: object, reason: RejectReason, field: str) -> None:
    rejection = refused(payload)
    assert rejection.reason == reason
    assert field in [error.field for error in rejection.errors]
    assert field in rejection.message


def test_missing_fields_are_all_listed() -> None:
    rejection = refused({"event_type": "player_login"})
    assert rejection.reason == RejectReason.MISSING_FIELD
    assert [e.field for e in rejection.errors] == ["player_id", "game_id", "timestamp"]
    assert all(e.message == "is required" for e in rejection.errors)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", RejectReason.INVALID_JSON),
        (b"{", RejectReason.INVALID_JSON),
        (b'{"a": NaN}', RejectReason.INVALID_JSON),
        (b'{"a": Infinity}', RejectReason.INVALID_JSON),
        (b"\xff\xfe{}", RejectReason.NOT_UTF8),
        (b"[]", RejectReason.NOT_AN_OBJECT),
        (b'"text"', RejectReason.NOT_AN_OBJECT),
        (b"null", RejectReason.NOT_AN_OBJECT),
        (b"[" * 100_000 + b"]" * 100_000, RejectReason.TOO_LARGE),
        (b"[" * 30_000 + b"]" * 30_000, RejectReason.TOO_DEEP),
    ],
)
def test_unparsable_bytes_are_refused(raw: bytes, reason: RejectReason) -> None:
    rejection = parse_event(raw, now=NOW)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == reason
    assert rejection.message


def test_size_limit_is_configurable_and_named() -> None:
    raw = json.dumps(event(data={"score": 1, "won": True, "pad": "x" * 500})).encode()
    rejection = parse_event(raw, now=NOW, limits=ParseLimits(max_event_bytes=256))
    assert isinstance(rejection, Rejection)
    assert rejection.reason == RejectReason.TOO_LARGE
    assert "the limit is 256" in rejection.message


def test_future_skew_is_configurable() -> None:
    payload = event(timestamp="2026-11-27T12:30:00Z")
    assert isinstance(parse(payload), Rejection)
    relaxed = ParseLimits(max_future_skew=timedelta(hours=1))
    assert isinstance(parse_event(json.dumps(payload).encode(), now=NOW, limits=relaxed), Event)


def test_validate_event_takes_decoded_values_like_a_gateway_batch_item() -> None:
    assert isinstance(validate_event(event(), now=NOW), Event)
    rejection = validate_event(["not", "an", "object"], now=NOW)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == RejectReason.NOT_AN_OBJECT


def test_derived_ids_are_deterministic_and_distinct() -> None:
    first = derived_event_id("player.events.raw", 0, 41)
    assert first == derived_event_id("player.events.raw", 0, 41)
    assert first != derived_event_id("player.events.raw", 1, 41)
    assert first != derived_event_id("player.events.raw", 0, 42)


def test_json_round_trip_of_an_accepted_event() -> None:
    original = accepted(event(event_type="purchase", data={"amount": 4.5, "currency": "USD"}))
    with_id = original.with_event_id(uuid.UUID(int=1))
    again = accepted(with_id.to_json_dict())
    assert again == with_id


# ------------------------------------------------------------- the accept-only fast path agrees


def test_a_name_valid_as_a_player_id_is_still_checked_as_an_event_type() -> None:
    # The fast path remembers names that passed a pattern; one pattern's pass is not another's.
    assert isinstance(parse(event(player_id="Match.Completed")), Event)
    rejection = refused(event(event_type="Match.Completed"))
    assert rejection.reason == RejectReason.INVALID_FIELD
