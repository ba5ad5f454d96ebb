"""Parsing the player-event contract: bytes (a Kafka record, an HTTP body) or an already
decoded JSON value into an `Event`, or a `Rejection` that says why not. Pure, and total: no input
of any size or shape raises (tests/unit/contract/test_parser_properties.py).

Two judges, one verdict: an accept-only fast path (`_fast`, orjson and hand-written checks) takes
the plain, valid events that make up nearly all traffic; everything it is not sure of goes to
strict JSON (`strict_json`) and the pydantic models (`models`), which decide and word every
rejection. The value types and limits live in `event` and are re-exported here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventfleet.contract import strict_json
from eventfleet.contract._fast import fast_event, fast_value
from eventfleet.contract.event import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_FUTURE_SKEW,
    DERIVED_ID_NAMESPACE,
    EARLIEST_TIMESTAMP,
    INT32_MAX,
    KNOWN_EVENT_TYPES,
    MAX_DEPTH,
    Event,
    FieldError,
    KnownEventType,
    ParseLimits,
    Rejection,
    RejectReason,
    derived_event_id,
)
from eventfleet.contract.models import DATA_MODELS, Envelope, judge_bytes, judge_value

__all__ = [
    "DATA_MODELS",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_FUTURE_SKEW",
    "DERIVED_ID_NAMESPACE",
    "EARLIEST_TIMESTAMP",
    "INT32_MAX",
    "KNOWN_EVENT_TYPES",
    "MAX_DEPTH",
    "Event",
    "FieldError",
    "KnownEventType",
    "ParseLimits",
    "RejectReason",
    "Rejection",
    "derived_event_id",
    "event_json_schema",
    "parse_event",
    "validate_event",
]


def event_json_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema of the event envelope (the top-level fields), for API documentation.

    `data` is a free object here; its per-type fields are `DATA_MODELS`' schemas.
    """
    return Envelope.model_json_schema(ref_template=ref_template)


def parse_event(
    raw: bytes, *, now: datetime, limits: ParseLimits = DEFAULT_LIMITS
) -> Event | Rejection:
    """Bytes from Kafka (or an HTTP body) into an Event, or a Rejection saying why not."""
    if len(raw) > limits.max_event_bytes:
        return Rejection(
            RejectReason.TOO_LARGE,
            f"event is {len(raw)} bytes; the limit is {limits.max_event_bytes}",
        )
    fast = fast_event(raw, now, limits)
    if fast is not None:
        return fast
    return judge_bytes(raw, now=now, limits=limits)


def validate_event(
    value: object, *, now: datetime, limits: ParseLimits = DEFAULT_LIMITS
) -> Event | Rejection:
    """An already-decoded JSON value (e.g. one item of a gateway batch) into an Event. The
    value is taken as JSON's reading of its text (`strict_json.loads` gives it so): integers
    exact, keys unique; its depth is checked here."""
    if type(value) is dict and not strict_json.depth_exceeds(value, limits.max_depth):
        fast = fast_value(value, now, limits)
        if fast is not None:
            return fast
    return judge_value(value, now=now, limits=limits)
