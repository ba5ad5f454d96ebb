"""The models that judge every event the fast path does not vouch for, and word every
rejection: pydantic models of the envelope and of each known type's `data`. Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final

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

from eventfleet.contract import strict_json
from eventfleet.contract.event import (
    EARLIEST_TIMESTAMP,
    EVENT_TYPE_PATTERN,
    IDENTIFIER_PATTERN,
    INT32_MAX,
    RFC3339,
    Event,
    FieldError,
    ParseLimits,
    Rejection,
    RejectReason,
)

Identifier = Annotated[StrictStr, Field(pattern=IDENTIFIER_PATTERN)]
Count = Annotated[StrictInt, Field(ge=0, le=INT32_MAX)]


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


class Envelope(BaseModel):
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


def judge_bytes(raw: bytes, *, now: datetime, limits: ParseLimits) -> Event | Rejection:
    """parse_event without the accept-only fast path: strict JSON, then the models decide."""
    value = strict_json.loads(raw, max_depth=limits.max_depth)
    if isinstance(value, strict_json.JsonProblem):
        return Rejection(RejectReason(value.reason), value.message)
    return judge_value(value, now=now, limits=limits)


def judge_value(value: object, *, now: datetime, limits: ParseLimits) -> Event | Rejection:
    """validate_event without the accept-only fast path: the models decide."""
    if strict_json.depth_exceeds(value, limits.max_depth):
        return Rejection(
            RejectReason.TOO_DEEP, f"arrays and objects nest deeper than {limits.max_depth}"
        )
    if not isinstance(value, dict):
        return Rejection(
            RejectReason.NOT_AN_OBJECT, f"an event must be a JSON object, not {_json_type(value)}"
        )
    try:
        envelope = Envelope.model_validate(value)
    except ValidationError as error:
        errors = _field_errors(error)
        missing = any(e["type"] == "missing" for e in error.errors())
        reason = RejectReason.MISSING_FIELD if missing else RejectReason.INVALID_FIELD
        return Rejection(reason, _summary(errors), errors)
    return _validate_envelope(envelope, now=now, limits=limits)


def _validate_envelope(
    envelope: Envelope, *, now: datetime, limits: ParseLimits
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
