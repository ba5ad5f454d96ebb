"""Properties of the parsers at every entry: whatever the bytes or the decoded value, the result
is an Event or a Rejection, never an exception (conventions: parsers never raise). Hypothesis
generates random bytes, random JSON, deep and wide nesting, and duplicate keys; each test is
bounded by its number of examples."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventfleet.contract import strict_json
from eventfleet.contract._fast import _exact
from eventfleet.contract.events import (
    MAX_DEPTH,
    Event,
    Rejection,
    RejectReason,
    parse_event,
    validate_event,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
KEYS = st.sampled_from(["event_type", "player_id", "game_id", "timestamp", "data", "event_id"])


def nested(depth: int, shape: str) -> str:
    if shape == "object":
        return '{"k":' * depth + "1" + "}" * depth
    return "[" * depth + "1" + "]" * depth


def refused(raw: bytes) -> Rejection:
    """What parse_event gives `raw`, which must be a Rejection."""
    parsed = parse_event(raw, now=NOW)
    assert isinstance(parsed, Rejection)
    return parsed


def event_text(data: str) -> bytes:
    return (
        '{"event_type":"match_completed","player_id":"p1","game_id":"g1",'
        '"timestamp":"2026-11-27T11:00:00Z","data":{"score":1,"won":true,"extra":' + data + "}}"
    ).encode()


@BOUNDED
@given(st.binary(max_size=300))
def test_random_bytes_give_an_event_or_a_rejection(raw: bytes) -> None:
    assert isinstance(parse_event(raw, now=NOW), Event | Rejection)


@BOUNDED
@given(st.dictionaries(KEYS | st.text(max_size=6), json_values, max_size=8))
def test_random_json_objects_give_an_event_or_a_rejection(value: dict[str, Any]) -> None:
    raw = json.dumps(value).encode()
    assert isinstance(parse_event(raw, now=NOW), Event | Rejection)
    assert isinstance(validate_event(value, now=NOW), Event | Rejection)


@BOUNDED
@given(st.integers(min_value=1, max_value=5000), st.sampled_from(["array", "object"]))
@example(600, "array")  # the 1.3 KB event that crash-looped every consumer
@example(MAX_DEPTH - 2, "object")
@example(MAX_DEPTH - 1, "object")
def test_nesting_is_refused_beyond_the_limit_and_kept_within_it(depth: int, shape: str) -> None:
    raw = event_text(nested(depth, shape))
    parsed = parse_event(raw, now=NOW)
    decoded = validate_event(json.loads(raw), now=NOW) if depth < 900 else None
    # The event is depth 1, its data 2, the extra value 3 and each level below it one more.
    if depth + 2 <= MAX_DEPTH:
        assert isinstance(parsed, Event)
        assert isinstance(decoded, Event)
    else:
        assert isinstance(parsed, Rejection)
        assert parsed.reason == RejectReason.TOO_DEEP
        if decoded is not None:
            assert isinstance(decoded, Rejection)
            assert decoded.reason == RejectReason.TOO_DEEP


@BOUNDED
@given(KEYS, json_values, json_values, st.sampled_from(["top", "data"]))
def test_a_key_given_twice_is_refused_at_any_level(
    key: str, first: object, second: object, level: str
) -> None:
    pair = f"{json.dumps(key)}:{json.dumps(first)},{json.dumps(key)}:{json.dumps(second)}"
    if level == "data":
        raw = event_text("{" + pair + "}")
    else:
        raw = (
            '{"event_type":"player_login","player_id":"p","game_id":"g",'
            '"timestamp":"2026-11-27T11:00:00Z",' + pair + "}"
        ).encode()
    assert refused(raw).reason in {RejectReason.DUPLICATE_KEY, RejectReason.TOO_DEEP}


def test_duplicate_event_type_is_refused_not_last_wins() -> None:
    rejection = refused(
        b'{"event_type":"purchase","event_type":"match_completed","player_id":"p",'
        b'"game_id":"g","timestamp":"2026-11-27T11:00:00Z","data":{"score":1,"won":true}}'
    )
    assert rejection.reason == RejectReason.DUPLICATE_KEY
    assert "event_type" in rejection.message


def test_an_escaped_colon_cannot_hide_a_duplicate_from_the_fast_path() -> None:
    # The fast path counts colons; \u003a is a colon only after decoding.
    raw = (
        b'{"event_type":"player_login","player_id":"p","game_id":"g",'
        b'"timestamp":"2026-11-27T11:00:00Z","data":{"x\\u003a":1,"a":1,"a":2}}'
    )
    assert refused(raw).reason == RejectReason.DUPLICATE_KEY


@BOUNDED
@given(json_values)
def test_strict_loads_reads_what_json_reads_when_keys_are_unique(value: object) -> None:
    raw = json.dumps(value).encode()
    found = strict_json.loads(raw, max_depth=1000)
    assert found == json.loads(raw)
    fast = orjson.loads(raw)
    # is_plain vouches for keys and depth; numbers orjson read inexactly are _exact's to catch.
    if isinstance(value, dict | list) and strict_json.is_plain(raw, fast, 1000) and _exact(fast):
        assert fast == found


@BOUNDED
@given(st.binary(max_size=200))
def test_strict_loads_never_raises(raw: bytes) -> None:
    found = strict_json.loads(raw, max_depth=MAX_DEPTH)
    if isinstance(found, strict_json.JsonProblem):
        assert found.reason in {"not_utf8", "invalid_json", "too_deep", "duplicate_key"}
