"""Request bodies into events ready for Kafka, and the JSON answers. Pure: no I/O.

Validation is the consumers' own (`eventfleet.contract.events`), so the gateway accepts exactly
what the consumers can process. Each accepted event gets an `event_id` (UUIDv7) when it has
none and is encoded once; the encoded form is what Kafka receives and must itself fit the
consumers' size limit.

Batches are accept-valid by default: valid items are produced, invalid ones are listed by index
with their reasons (202 when at least one was accepted, 400 when none was). With `atomic`, one
invalid item rejects the whole batch (400) and nothing is produced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

import orjson

from eventfleet.contract import strict_json
from eventfleet.contract.events import (
    Event,
    FieldError,
    ParseLimits,
    Rejection,
    RejectReason,
    parse_event,
    validate_event,
)

JSON_CONTENT_TYPE: Final = "application/json"


class Ready(NamedTuple):
    """A valid event with its id, encoded for Kafka (a tuple: built per event, cheaply)."""

    at: int  # position in the request's batch (0 for a single event)
    event_id: str
    key: bytes
    payload: bytes


class Refused(NamedTuple):
    at: int
    rejection: Rejection


@dataclass(frozen=True, slots=True)
class BodyError:
    """The request as a whole is unusable (not one of its items)."""

    status: int
    code: str
    message: str
    errors: tuple[FieldError, ...] = ()


@dataclass(frozen=True, slots=True)
class Decoded:
    ready: tuple[Ready, ...]
    refused: tuple[Refused, ...]


def encode(
    event: Event, index: int, limits: ParseLimits, new_id: Callable[[], str]
) -> Ready | Refused:
    event_id = str(event.event_id) if event.event_id is not None else new_id()
    payload = _dumps_event(event, event_id)
    if len(payload) > limits.max_event_bytes:
        return Refused(
            index,
            Rejection(
                RejectReason.TOO_LARGE,
                f"the encoded event is {len(payload)} bytes; the limit is {limits.max_event_bytes}",
            ),
        )
    return Ready(index, event_id, event.player_id.encode(), payload)


def _decimal_text(value: object) -> str:
    # Amounts are Decimals; the contract carries them as strings (Event.to_json_dict does too).
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


_EVENT_OPTIONS: Final = orjson.OPT_UTC_Z


def _dumps_event(event: Event, event_id: str) -> bytes:
    """The event as the consumers read it: exactly `Event.to_json_dict()` with the id set.

    Built here, straight from the fields, because that is a third of the encoding's cost: orjson
    writes the UTC timestamp as to_json_dict does (RFC 3339, `Z`, microseconds only when
    present) and Decimal amounts as strings. What orjson refuses but JSON allows and the
    consumers read back (integers beyond 64 bits, lone surrogates, nesting deeper than 255) goes
    through to_json_dict and the standard library. tests/unit/gateway checks both give the same
    bytes' meaning."""
    try:
        return orjson.dumps(
            {
                "event_id": event_id,
                "event_type": event.event_type,
                "player_id": event.player_id,
                "game_id": event.game_id,
                "timestamp": event.timestamp,
                "data": event.data,
            },
            default=_decimal_text,
            option=_EVENT_OPTIONS,
        )
    except orjson.JSONEncodeError:
        record = event.to_json_dict()
        record["event_id"] = event_id
        return json.dumps(record, separators=(",", ":")).encode()


def decode_single(
    body: bytes, *, now: datetime, limits: ParseLimits, new_id: Callable[[], str]
) -> Decoded | BodyError:
    if len(body) > limits.max_event_bytes:
        return BodyError(
            413,
            RejectReason.TOO_LARGE,
            f"the body is {len(body)} bytes; one event may have {limits.max_event_bytes}",
        )
    parsed = parse_event(body, now=now, limits=limits)
    if isinstance(parsed, Rejection):
        return Decoded((), (Refused(0, parsed),))
    outcome = encode(parsed, 0, limits, new_id)
    if isinstance(outcome, Refused):
        return Decoded((), (outcome,))
    return Decoded((outcome,), ())


def decode_batch(
    body: bytes,
    *,
    now: datetime,
    limits: ParseLimits,
    max_events: int,
    new_id: Callable[[], str],
) -> Decoded | BodyError:
    value = _loads_batch(body, limits.max_depth)
    if isinstance(value, BodyError):
        return value
    if not isinstance(value, list):
        return BodyError(400, "not_an_array", "a batch must be a JSON array of events")
    if not value:
        return BodyError(400, "empty_batch", "a batch must hold at least one event")
    if len(value) > max_events:
        return BodyError(
            413,
            "too_many_events",
            f"the batch holds {len(value)} events; the limit is {max_events}",
        )
    ready: list[Ready] = []
    refused: list[Refused] = []
    for index, item in enumerate(value):
        checked = validate_event(item, now=now, limits=limits)
        if isinstance(checked, Rejection):
            refused.append(Refused(index, checked))
            continue
        outcome = encode(checked, index, limits, new_id)
        if isinstance(outcome, Refused):
            refused.append(outcome)
        else:
            ready.append(outcome)
    return Decoded(tuple(ready), tuple(refused))


# Every byte but the digits becomes "x": a run of 19 digits then shows as 19 zeros. An integer
# that long may lie outside 64 bits, which orjson reads as a float (the standard library keeps
# it exact). A translate and a search cost ~0.2 us an event; orjson saves ~1 us.
_DIGITS_ONLY: Final = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 for b in range(256))
_LONG_NUMBER: Final = b"0" * 19


def _loads_batch(body: bytes, max_depth: int) -> Any:
    """The batch as strict JSON (eventfleet.contract.strict_json): orjson (~2.5x faster than
    json.loads) where it provably reads the same; whatever it refuses (invalid JSON or UTF-8,
    lone surrogates, which JSON allows) and bodies with long numbers go through the strict
    reader, which decides and names the error. The array is one level above its events."""
    if _LONG_NUMBER not in body.translate(_DIGITS_ONLY):
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            if strict_json.is_plain(body, value, max_depth + 1):
                return value
    value = strict_json.loads(body, max_depth=max_depth + 1)
    if isinstance(value, strict_json.JsonProblem):
        message = value.message
        if value.reason == "too_deep":
            message += f" ({max_depth} for an event, and one level for the batch's array)"
        return BodyError(400, value.reason, message)
    return value


def dumps(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # see _dumps_event
        return json.dumps(value, separators=(",", ":")).encode()


def error_body(code: str, message: str, errors: Sequence[FieldError] = ()) -> bytes:
    body: dict[str, Any] = {"error": str(code), "message": message}
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return dumps(body)


def rejection_json(refused: Refused, *, with_index: bool) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if with_index:
        item["index"] = refused.at
    item["error"] = str(refused.rejection.reason)
    item["message"] = refused.rejection.message
    if refused.rejection.errors:
        item["errors"] = [
            {"field": e.field, "message": e.message} for e in refused.rejection.errors
        ]
    return item


def accepted_body(event_ids: Sequence[str], refused: Sequence[Refused] = ()) -> bytes:
    body: dict[str, Any] = {"accepted": len(event_ids), "event_ids": list(event_ids)}
    if refused:
        body["rejected"] = [rejection_json(r, with_index=True) for r in refused]
    return dumps(body)


def batch_rejected_body(refused: Sequence[Refused], *, atomic: bool, total: int) -> bytes:
    message = f"{len(refused)} of {total} events are invalid" + (
        "; the batch is atomic, so none was accepted" if atomic else ""
    )
    return dumps(
        {
            "error": "invalid_events",
            "message": message,
            "accepted": 0,
            "event_ids": [],
            "rejected": [rejection_json(r, with_index=True) for r in refused],
        }
    )


def single_rejected_body(refused: Refused) -> bytes:
    return dumps(rejection_json(refused, with_index=False))
