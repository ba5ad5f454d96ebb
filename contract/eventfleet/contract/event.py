"""The player-event data contract's values: what a valid event is once parsed (`Event`), why an
invalid one was refused (`Rejection` with a stable `RejectReason`), and the limits a parser
enforces. Pure: no I/O. Parsing lives in `events`; the models that judge every unusual input
live in `models`.

An event is a UTF-8 JSON object:

    event_type   str, known types below or any other snake_case name (kept, counted, not ranked)
    player_id    str, 1-128 of [A-Za-z0-9_.@-]      (no ':' - it separates Redis key parts)
    game_id      str, same alphabet
    timestamp    RFC 3339 with a UTC offset, not after now + max_future_skew
    data         object, fields per event type (extra keys are kept)
    event_id     UUID, optional (the gateway always sets one)

and, as JSON, strict: no object key twice at any level, nesting at most MAX_DEPTH deep (see
`strict_json`).
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, get_args

KnownEventType = Literal[
    "player_login",
    "player_logout",
    "player_level_up",
    "match_completed",
    "achievement_unlocked",
    "purchase",
]
KNOWN_EVENT_TYPES: Final[tuple[KnownEventType, ...]] = get_args(KnownEventType)

IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9_.@-]{1,128}$"
EVENT_TYPE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
# RFC 3339 date-time: full date, 'T' (or 't'/' '), time with optional fraction, Z or offset.
RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
EARLIEST_TIMESTAMP: Final = datetime(2000, 1, 1, tzinfo=UTC)
INT32_MAX: Final = 2**31 - 1
# Events carry no binary payloads: a few KB is generous; the limit protects every hop.
DEFAULT_MAX_EVENT_BYTES: Final = 64 * 1024
DEFAULT_MAX_FUTURE_SKEW: Final = timedelta(minutes=5)
# How deep arrays and objects may nest, the event object itself being depth 1 and `data` depth 2.
# The contract's own fields never go deeper than 2; 32 leaves producers room for structured
# extra keys while staying far below where recursive JSON code (Python's json and its encoder,
# pydantic's serializer, orjson's 255-deep writer, PostgreSQL's jsonb) fails or slows down.
# A 1.3 KB event nested 600 deep used to crash-loop every consumer.
MAX_DEPTH: Final = 32
# Derived ids are stable across replays: the same record always gets the same id.
DERIVED_ID_NAMESPACE: Final = uuid.UUID("5b0f8a52-3f5e-4a51-9d1e-6c7a2f1e0b7d")


class RejectReason(enum.StrEnum):
    """Why an event was refused: stable codes for metrics labels, DLQ rows and HTTP bodies."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    INVALID_DATA = "invalid_data"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_DEEP = "too_deep"
    DUPLICATE_KEY = "duplicate_key"


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # dotted path, e.g. "data.score"
    message: str


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    message: str
    errors: tuple[FieldError, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW
    max_depth: int = MAX_DEPTH


DEFAULT_LIMITS: Final = ParseLimits()


@dataclass(frozen=True, slots=True)
class Event:
    """A valid event. `data` holds validated values (ints, bools, Decimal amounts) plus any
    extra keys the producer sent."""

    event_type: str
    player_id: str
    game_id: str
    timestamp: datetime  # timezone-aware, converted to UTC
    data: Mapping[str, Any]
    event_id: uuid.UUID | None

    @property
    def known(self) -> bool:
        return self.event_type in KNOWN_EVENT_TYPES

    def with_event_id(self, event_id: uuid.UUID) -> Event:
        return Event(
            self.event_type, self.player_id, self.game_id, self.timestamp, self.data, event_id
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values (what the gateway produces, what the logger stores)."""
        return {
            "event_id": str(self.event_id) if self.event_id is not None else None,
            "event_type": self.event_type,
            "player_id": self.player_id,
            "game_id": self.game_id,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "data": {k: _json_value(v) for k, v in self.data.items()},
        }


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    return value


def derived_event_id(
    topic: str, partition: int, offset: int, topic_id: str | None = None
) -> uuid.UUID:
    """The id of an event that arrived without one: deterministic, so replays dedupe. A topic
    deleted and created again numbers its records from 0 anew, so the incarnation's Kafka
    topic id is part of the name: its records are other events than the old ones at the same
    offsets."""
    name = f"{topic}/{partition}/{offset}"
    return uuid.uuid5(DERIVED_ID_NAMESPACE, f"{name}@{topic_id}" if topic_id else name)
