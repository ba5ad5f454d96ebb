"""The player-event data contract, shared by the gateway (what it accepts) and the consumers
(what they process). Pure: no I/O, no clocks read except through the `now` argument.

An event is a UTF-8 JSON object:

    event_type   str, known types below or any other snake_case name (kept, counted, not ranked)
    player_id    str, 1-128 of [A-Za-z0-9_.@-]      (no ':' - it separates Redis key parts)
    game_id      str, same alphabet
    timestamp    RFC 3339 with a UTC offset, not after now + max_future_skew
    data         object, fields per event type (extra keys are kept)
    event_id     UUID, optional (the gateway always sets one)

Every rejection has a stable reason code (for metrics and the DLQ) and a human message that
names the field.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

KNOWN_EVENT_TYPES: Final = (
    "player_login",
    "player_logout",
    "player_level_up",
    "match_completed",
    "achievement_unlocked",
    "purchase",
)
KnownEventType = Literal[
    "player_login",
    "player_logout",
    "player_level_up",
    "match_completed",
    "achievement_unlocked",
    "purchase",
]

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
# Derived ids are stable across replays: the same record always gets the same id.
DERIVED_ID_NAMESPACE: Final = uuid.UUID("5b0f8a52-3f5e-4a51-9d1e-6c7a2f1e0b7d")
_BOM: Final = b"\xef\xbb\xbf"

Identifier = Annotated[StrictStr, Field(pattern=IDENTIFIER_PATTERN)]
Count = Annotated[StrictInt, Field(ge=0, le=INT32_MAX)]


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


DEFAULT_LIMITS: Final = ParseLimits()


class _Data(BaseModel):
    """Per-type data: extra keys are kept (the logger stores them), known keys are checked."""

    model_config = ConfigDict(extra="allow", frozen=True)


class PlayerLoginData(_Data):
    platform: Annotated[StrictStr, Field(max_length=64)] | None = None
    session_id: Annotated[StrictStr, Field(max_length=128)] | None = None


class PlayerLogoutData(_Data):
    session_seconds: Count | None = None


class PlayerLevelUpData(_Data):
    level: Annotated[StrictInt, Field(ge=1, le=1_000_000)]


class MatchCompletedData(_Data):
    score: Count
    won: StrictBool
    kills: Count | None = None
    deaths: Count | None = None
    duration_seconds: Count | None = None


class AchievementUnlockedData(_Data):
    achievement_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]


class PurchaseData(_Data):
    # A JSON number or a numeric string; at most 4 decimal places, below 10^9.
    amount: Annotated[Decimal, Field(ge=0, max_digits=13, decimal_places=4, allow_inf_nan=False)]
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]

    @field_validator("amount", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("must be a number, not a boolean")  # noqa: TRY004 - pydantic wants ValueError
        return value


DATA_MODELS: Final[Mapping[str, type[_Data]]] = {
    "player_login": PlayerLoginData,
    "player_logout": PlayerLogoutData,
    "player_level_up": PlayerLevelUpData,
    "match_completed": MatchCompletedData,
    "achievement_unlocked": AchievementUnlockedData,
    "purchase": PurchaseData,
}


class _Envelope(BaseModel):
    """The top-level shape; `data` is checked separately so its errors read `data.<field>`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: Annotated[StrictStr, Field(pattern=EVENT_TYPE_PATTERN)]
    player_id: Identifier
    game_id: Identifier
    timestamp: StrictStr
    data: dict[str, Any] = Field(default_factory=dict)
    event_id: uuid.UUID | None = None

    @field_validator("timestamp")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        if not RFC3339.match(value):
            raise ValueError(
                "must be an RFC 3339 date-time with a UTC offset, e.g. 2026-11-27T09:30:00Z"
            )
        _to_utc(value)  # the shape is right; the date must exist too (no 2026-02-30)
        return value

    @field_validator("event_id", mode="before")
    @classmethod
    def _uuid_text(cls, value: object) -> object:
        if value is not None and not isinstance(value, str):
            raise ValueError("must be a UUID string")
        return value


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
        return self.event_type in DATA_MODELS

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


def event_json_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema of the event envelope (the top-level fields), for API documentation.

    `data` is a free object here; its per-type fields are `DATA_MODELS`' schemas.
    """
    return _Envelope.model_json_schema(ref_template=ref_template)


def derived_event_id(topic: str, partition: int, offset: int) -> uuid.UUID:
    """The id of an event that arrived without one: deterministic, so replays dedupe."""
    return uuid.uuid5(DERIVED_ID_NAMESPACE, f"{topic}/{partition}/{offset}")


def parse_event(
    raw: bytes, *, now: datetime, limits: ParseLimits = DEFAULT_LIMITS
) -> Event | Rejection:
    """Bytes from Kafka (or an HTTP body) into an Event, or a Rejection saying why not."""
    if len(raw) > limits.max_event_bytes:
        return Rejection(
            RejectReason.TOO_LARGE,
            f"event is {len(raw)} bytes; the limit is {limits.max_event_bytes}",
        )
    # Fastest path: orjson and hand-written checks accept the plain, valid events that make up
    # nearly all traffic. They only ever accept; anything they are not sure of falls through to
    # the model below, which decides (and words every rejection) exactly as before.
    fast = _fast_event(raw, now, limits)
    if fast is not None:
        return fast
    return _model_event(raw, now=now, limits=limits)


def _model_event(raw: bytes, *, now: datetime, limits: ParseLimits) -> Event | Rejection:
    """parse_event without the accept-only fast path: the models decide."""
    # Fast path for the common case: pydantic parses and checks the JSON in one pass. It gives
    # up on anything unusual (invalid UTF-8, a BOM, NaN/Infinity, which json.loads and this
    # contract refuse but pydantic's parser accepts, or any error), and the path below then
    # decides exactly as it always did, with the precise reason.
    if not raw.startswith(_BOM) and b"NaN" not in raw and b"Infinity" not in raw:
        try:
            envelope = _Envelope.model_validate_json(raw)
        except ValidationError:
            pass
        else:
            return _validate_envelope(envelope, now=now, limits=limits)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Rejection(
            RejectReason.NOT_UTF8, f"not UTF-8: invalid byte at position {error.start}"
        )
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        return Rejection(RejectReason.INVALID_JSON, f"not valid JSON: {error}")
    return _model_value(value, now=now, limits=limits)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def validate_event(
    value: object, *, now: datetime, limits: ParseLimits = DEFAULT_LIMITS
) -> Event | Rejection:
    """An already-decoded JSON value (e.g. one item of a gateway batch) into an Event."""
    if type(value) is dict:
        # The accept-only fast path (as in parse_event): the models judge everything else.
        fast = _fast_value(value, now, limits)
        if fast is not None:
            return fast
    return _model_value(value, now=now, limits=limits)


def _model_value(value: object, *, now: datetime, limits: ParseLimits) -> Event | Rejection:
    """validate_event without the accept-only fast path: the models decide."""
    if not isinstance(value, dict):
        return Rejection(
            RejectReason.NOT_AN_OBJECT, f"an event must be a JSON object, not {_json_type(value)}"
        )
    try:
        envelope = _Envelope.model_validate(value)
    except ValidationError as error:
        errors = _field_errors(error)
        missing = any(e["type"] == "missing" for e in error.errors())
        reason = RejectReason.MISSING_FIELD if missing else RejectReason.INVALID_FIELD
        return Rejection(reason, _summary(errors), errors)
    return _validate_envelope(envelope, now=now, limits=limits)


def _validate_envelope(
    envelope: _Envelope, *, now: datetime, limits: ParseLimits
) -> Event | Rejection:
    timestamp = _to_utc(envelope.timestamp)
    if timestamp > now + limits.max_future_skew:
        return Rejection(
            RejectReason.FUTURE_TIMESTAMP,
            f"timestamp {envelope.timestamp} is more than {limits.max_future_skew} after the "
            f"receiver's clock ({now.isoformat()})",
            (FieldError("timestamp", "in the future beyond the allowed clock skew"),),
        )
    if timestamp < EARLIEST_TIMESTAMP:
        return Rejection(
            RejectReason.INVALID_FIELD,
            f"timestamp {envelope.timestamp} is before {EARLIEST_TIMESTAMP.date()}",
            (FieldError("timestamp", "before 2000-01-01"),),
        )

    data: Mapping[str, Any] = envelope.data
    model = DATA_MODELS.get(envelope.event_type)
    if model is not None:
        try:
            checked = model.model_validate(envelope.data)
        except ValidationError as error:
            errors = _field_errors(error, prefix="data.")
            return Rejection(RejectReason.INVALID_DATA, _summary(errors), errors)
        data = {**checked.model_dump(exclude_none=True), **(checked.model_extra or {})}
    return Event(
        envelope.event_type,
        envelope.player_id,
        envelope.game_id,
        timestamp,
        data,
        envelope.event_id,
    )


# Pattern errors say what the pattern means, not the regex.
_PATTERN_HINTS: Final = {
    "player_id": "must be 1-128 characters of letters, digits, '_', '.', '@' or '-'",
    "game_id": "must be 1-128 characters of letters, digits, '_', '.', '@' or '-'",
    "event_type": "must be snake_case: a lowercase letter, then up to 63 of [a-z0-9_]",
    "data.currency": "must be an ISO 4217 currency code of three capital letters, e.g. EUR",
}


def _to_utc(text: str) -> datetime:
    """An RFC 3339 text (already matched by the pattern) as an aware UTC datetime; ValueError
    when the date or time does not exist or falls outside the representable range."""
    try:
        return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a real date-time") from None


def _field_errors(error: ValidationError, prefix: str = "") -> tuple[FieldError, ...]:
    found = []
    for item in error.errors(include_url=False):
        path = (prefix + ".".join(str(part) for part in item["loc"])).rstrip(".") or "data"
        if item["type"] == "missing":
            message = "is required"
        elif item["type"] == "string_pattern_mismatch" and path in _PATTERN_HINTS:
            message = _PATTERN_HINTS[path]
        else:
            message = item["msg"].removeprefix("Value error, ")
        found.append(FieldError(path, message))
    return tuple(found)


def _summary(errors: tuple[FieldError, ...]) -> str:
    return "; ".join(f"{e.field}: {e.message}" for e in errors)


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "a number"


# ----------------------------------------------------------------------- the accept-only fast path
#
# The same contract as the models above, written out by hand for speed (pydantic's validation
# and dumping cost most of a consumer's CPU). It returns an Event only when the models would
# return an equal one and None otherwise, so the models stay the single judge of anything
# unusual and the only source of rejection messages. Shapes are checked stricter than the models
# (e.g. the canonical UUID form only); a stricter check merely sends more events the slow way.

_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
_EVENT_TYPE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Upper-case 'T' and 'Z' only, fractions of at most 6 digits: what fromisoformat reads exactly
# as the model's conversion (`_to_utc`) does.
_PLAIN_TIMESTAMP: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})"
)
_MISSING: Final = object()
# orjson reads integers beyond 64 bits as floats where Python's json keeps them exact: a float
# this large in `data` may have been such an integer, so that event takes the slow path.
_INEXACT: Final = float(2**63)


def _exact(value: object) -> bool:
    """No float in `value` that orjson may have made out of a big integer."""
    if isinstance(value, float):
        return -_INEXACT < value < _INEXACT
    if isinstance(value, dict):
        return all(_exact(v) for v in value.values())
    if isinstance(value, list):
        return all(_exact(v) for v in value)
    return True


# Texts seen to match a pattern, one set per pattern: the same few thousand event types, players
# and games recur in every batch, and a set lookup is cheaper than a regex.
_KNOWN_TYPES: Final[set[str]] = set()
_KNOWN_IDS: Final[set[str]] = set()
_KNOWN_LIMIT: Final = 100_000


def _remember(pattern: re.Pattern[str], known: set[str], text: str) -> bool:
    if pattern.fullmatch(text) is None:
        return False
    if len(known) >= _KNOWN_LIMIT:
        known.clear()
    known.add(text)
    return True


# Timestamp texts seen, as their UTC instants: events of the same second share one text.
_KNOWN_TIMES: Final[dict[str, datetime]] = {}


def _plain_timestamp(text: str) -> datetime | None:
    """The UTC instant of a plain RFC 3339 text, not before EARLIEST_TIMESTAMP (remembered),
    or None: let the models decide."""
    if _PLAIN_TIMESTAMP.fullmatch(text) is None:
        return None
    try:
        timestamp = datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    if timestamp < EARLIEST_TIMESTAMP:
        return None
    if len(_KNOWN_TIMES) >= _KNOWN_LIMIT:
        _KNOWN_TIMES.clear()
    _KNOWN_TIMES[text] = timestamp
    return timestamp


def _count(value: object) -> bool:
    """A Count: an int (not a bool) in 0..INT32_MAX."""
    return type(value) is int and 0 <= value <= INT32_MAX


def _optional_count(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    return value is None or _count(value)


def _optional_text(data: dict[str, Any], name: str, longest: int) -> bool:
    value = data.get(name)
    return value is None or (type(value) is str and len(value) <= longest)


def _with_fields(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any] | None:
    """What `{**model_dump(exclude_none=True), **model_extra}` gives: declared fields that are
    not None, in declaration order, then every other key as sent (None: an extra value the fast
    path cannot vouch for)."""
    keys = tuple(data)
    if keys == names[: len(keys)] and None not in data.values():
        return data  # the usual case: declared fields only, in order (orjson's dict is ours)
    return _with_extras(
        {name: data[name] for name in names if data.get(name) is not None}, data, names
    )


def _with_extras(
    found: dict[str, Any], data: dict[str, Any], names: tuple[str, ...]
) -> dict[str, Any] | None:
    """`found` (the declared fields, checked) followed by every other key of `data` as sent;
    None when such a value is one the fast path cannot vouch for."""
    for key, value in data.items():
        if key not in names:
            if not _exact(value):
                return None
            found[key] = value
    return found


def _match_ok(data: dict[str, Any]) -> bool:
    # Half of all traffic: the counts checked inline (as _count and _optional_count would).
    score, kills = data.get("score"), data.get("kills")
    deaths, duration = data.get("deaths"), data.get("duration_seconds")
    return (
        type(score) is int
        and 0 <= score <= INT32_MAX
        and type(data.get("won")) is bool
        and (kills is None or (type(kills) is int and 0 <= kills <= INT32_MAX))
        and (deaths is None or (type(deaths) is int and 0 <= deaths <= INT32_MAX))
        and (duration is None or (type(duration) is int and 0 <= duration <= INT32_MAX))
    )


def _login_ok(data: dict[str, Any]) -> bool:
    return _optional_text(data, "platform", 64) and _optional_text(data, "session_id", 128)


def _logout_ok(data: dict[str, Any]) -> bool:
    return _optional_count(data, "session_seconds")


def _level_ok(data: dict[str, Any]) -> bool:
    level = data.get("level")
    return type(level) is int and 1 <= level <= 1_000_000


def _achievement_ok(data: dict[str, Any]) -> bool:
    achievement = data.get("achievement_id")
    return type(achievement) is str and 1 <= len(achievement) <= 128


# Amounts the fast path converts itself: up to 9 integer and 4 fraction digits, ASCII only
# (`\d` would take other scripts' digits). Anything else (exponents, signs, spaces, more
# places, which the model may still accept) is the model's to judge.
_PLAIN_AMOUNT: Final = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,4})?")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_PURCHASE_FIELDS: Final = ("amount", "currency")


def _purchase_data(data: dict[str, Any]) -> dict[str, Any] | None:
    """A purchase's data with its amount as the model makes it (None: let the model decide).
    The model reads a JSON number as Decimal(str(number)) and a numeric string as
    Decimal(text); for the plain forms below that is the same Decimal, exponent included."""
    amount = data.get("amount")
    currency = data.get("currency")
    if type(currency) is not str or _CURRENCY.fullmatch(currency) is None:
        return None
    if type(amount) is int:
        if not 0 <= amount < 1_000_000_000:
            return None
        text = str(amount)
    elif type(amount) is float or type(amount) is str:
        text = str(amount)
        if _PLAIN_AMOUNT.fullmatch(text) is None:
            return None
    else:
        return None
    return _with_extras({"amount": Decimal(text), "currency": currency}, data, _PURCHASE_FIELDS)


# Per known type but purchase: the check of its data and its declared fields.
_DATA_CHECKS: Final[dict[str, tuple[Callable[[dict[str, Any]], bool], tuple[str, ...]]]] = {
    "match_completed": (_match_ok, ("score", "won", "kills", "deaths", "duration_seconds")),
    "player_login": (_login_ok, ("platform", "session_id")),
    "player_logout": (_logout_ok, ("session_seconds",)),
    "player_level_up": (_level_ok, ("level",)),
    "achievement_unlocked": (_achievement_ok, ("achievement_id",)),
}


def _fast_data(event_type: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The checked `data` of a known type (None: let the model decide)."""
    check = _DATA_CHECKS.get(event_type)
    if check is None:
        return _purchase_data(data)
    valid, names = check
    return _with_fields(data, names) if valid(data) else None


def _fast_event(raw: bytes, now: datetime, limits: ParseLimits) -> Event | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    return _fast_value(value, now, limits)


def _fast_value(  # noqa: PLR0911 - one flat run of checks is the point
    value: dict[str, Any], now: datetime, limits: ParseLimits
) -> Event | None:
    """The Event of a decoded JSON object the fast path can vouch for (None: let the models
    decide). `value` is the caller's to give away: its `data` may become the event's."""
    event_type = value.get("event_type")
    player_id = value.get("player_id")
    game_id = value.get("game_id")
    text = value.get("timestamp")
    ids = _KNOWN_IDS
    if not (
        type(event_type) is str
        and type(player_id) is str
        and type(game_id) is str
        and type(text) is str
        and (event_type in _KNOWN_TYPES or _remember(_EVENT_TYPE, _KNOWN_TYPES, event_type))
        and (player_id in ids or _remember(_IDENTIFIER, ids, player_id))
        and (game_id in ids or _remember(_IDENTIFIER, ids, game_id))
    ):
        return None
    timestamp = _KNOWN_TIMES.get(text)
    if timestamp is None:
        timestamp = _plain_timestamp(text)
        if timestamp is None:
            return None
    if timestamp > now + limits.max_future_skew:
        return None
    raw_id = value.get("event_id")
    event_id: uuid.UUID | None = None
    if raw_id is not None:
        if type(raw_id) is not str:
            return None
        event_id = _canonical_uuid(raw_id)
        if event_id is None:
            return None
    data = value.get("data", _MISSING)
    if data is _MISSING:
        data = {}
    elif type(data) is not dict:
        return None
    if event_type in DATA_MODELS:
        data = _fast_data(event_type, data)
        if data is None:
            return None
    elif not _exact(data):
        return None
    return _new_event(event_type, player_id, game_id, timestamp, data, event_id)


_UUID: Final = uuid.UUID
_UNKNOWN_SAFETY: Final = uuid.SafeUUID.unknown  # an enum member: looked up once, not per event
_new_object: Final = object.__new__
# UUID's slots, set through their descriptors (UUID.__setattr__ refuses; object.__setattr__
# would look each name up per call).
_set_uuid_int: Final = vars(uuid.UUID)["int"].__set__
_set_uuid_safety: Final = vars(uuid.UUID)["is_safe"].__set__


def _canonical_uuid(text: str) -> uuid.UUID | None:
    """uuid.UUID(text) for the canonical form (8-4-4-4-12 hex digits, either case), else None:
    the same object (value, is_safe), without UUID's general-purpose parsing. bytes.fromhex
    reads pairs of hex digits and skips ASCII whitespace, so 16 bytes out of the 32 characters
    left between the dashes means 32 hex digits (int(text, 16) would also take a sign, `0x`
    and `_`)."""
    if len(text) != 36 or text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return None
    digits = text.replace("-", "")
    if len(digits) != 32:
        return None
    try:
        value = bytes.fromhex(digits)
    except ValueError:
        return None
    if len(value) != 16:
        return None
    found = _new_object(_UUID)
    _set_uuid_int(found, int.from_bytes(value, "big"))
    _set_uuid_safety(found, _UNKNOWN_SAFETY)
    return found


# A frozen dataclass's __init__ sets each field through object.__setattr__; setting the slots
# directly builds the same object in half the time (this runs once per event).
_EVENT_SLOTS: Final = tuple(
    getattr(Event, name).__set__
    for name in ("event_type", "player_id", "game_id", "timestamp", "data", "event_id")
)


def _new_event(  # noqa: PLR0917 - the fields of Event, in order
    event_type: str,
    player_id: str,
    game_id: str,
    timestamp: datetime,
    data: Mapping[str, Any],
    event_id: uuid.UUID | None,
) -> Event:
    event = object.__new__(Event)
    set_type, set_player, set_game, set_time, set_data, set_id = _EVENT_SLOTS
    set_type(event, event_type)
    set_player(event, player_id)
    set_game(event, game_id)
    set_time(event, timestamp)
    set_data(event, data)
    set_id(event, event_id)
    return event
