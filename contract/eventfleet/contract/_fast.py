"""The accept-only fast path of the event parser: the same contract as `models`, written out by
hand for speed (pydantic's validation and dumping cost most of a consumer's CPU). It returns an
Event only when the models would return an equal one and None otherwise, so the models stay the
single judge of anything unusual and the only source of rejection messages. Shapes are checked
stricter than the models (e.g. the canonical UUID form only); a stricter check merely sends more
events the slow way.

Every value handed in has passed `strict_json` (depth, exact numbers, unique keys) already.
Parity with the models is guarded by tests/unit/contract/test_fast_path.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import orjson

from eventfleet.contract import strict_json
from eventfleet.contract.event import (
    EARLIEST_TIMESTAMP,
    INT32_MAX,
    KNOWN_EVENT_TYPES,
    Event,
    ParseLimits,
)

_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
_EVENT_TYPE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Upper-case 'T' and 'Z' only, fractions of at most 6 digits: what fromisoformat reads exactly
# as the model's conversion (`_to_utc`) does.
_PLAIN_TIMESTAMP: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})"
)
_MISSING: Final = object()
_KNOWN: Final = frozenset(KNOWN_EVENT_TYPES)
# orjson reads integers beyond 64 bits as floats where Python's json keeps them exact: a float
# this large in `data` may have been such an integer, so that event takes the slow path.
_INEXACT: Final = float(2**63)


def _exact(value: object) -> bool:
    """No float in `value` that orjson may have made out of a big integer. Iterative: the depth
    is bounded already, but a walk never recurses."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if not -_INEXACT < item < _INEXACT:
                return False
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
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
            if type(value) is not str and not _exact(value):
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


def fast_event(raw: bytes, now: datetime, limits: ParseLimits) -> Event | None:
    """The Event of `raw` when the fast path can vouch for it (None: let the models decide)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # includes nesting beyond orjson's own limit: strict_json words the refusal
    if type(value) is not dict or not strict_json.is_plain(raw, value, limits.max_depth):
        return None
    return fast_value(value, now, limits)


def fast_value(  # noqa: PLR0911 - one flat run of checks is the point
    value: dict[str, Any], now: datetime, limits: ParseLimits
) -> Event | None:
    """The Event of a decoded JSON object the fast path can vouch for (None: let the models
    decide). `value` must be JSON's reading of its text, its depth bounded (strict_json), and
    is the caller's to give away:
    its `data` may become the event's."""
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
    if event_type in _KNOWN:
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
