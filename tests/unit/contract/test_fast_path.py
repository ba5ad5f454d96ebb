"""The accept-only fast path (`eventfleet.contract._fast`) agrees with the models: it accepts
only what they accept and builds the same Event, on a spread of usual and odd inputs."""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson

from eventfleet.contract import strict_json
from eventfleet.contract._fast import fast_event, fast_value
from eventfleet.contract.events import ParseLimits, validate_event
from eventfleet.contract.models import judge_bytes, judge_value
from tests.unit.contract.test_events import NOW, event


def _variants() -> list[bytes]:
    """Valid events of every type and many near-misses: odd types, lengths, timestamps, ids."""
    odd: list[object] = [
        None, True, False, 0, -1, 1, 2**31 - 1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30,
        1.0, 1.5, -0.0, 1e300, "", "x", "10", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "é",
        "a\\b", "a\tb", "\x00", [], [1, 2**70], {}, {"n": 2**65}, {"f": 2.5},
    ]  # fmt: skip
    data_by_type: dict[str, dict[str, Any]] = {
        "match_completed": {
            "score": 10,
            "won": True,
            "kills": 1,
            "deaths": 2,
            "duration_seconds": 3,
        },
        "player_login": {"platform": "pc", "session_id": "s"},
        "player_logout": {"session_seconds": 5},
        "player_level_up": {"level": 3},
        "achievement_unlocked": {"achievement_id": "a1"},
        "purchase": {"amount": 9.99, "currency": "EUR"},
        "guild_joined": {"guild": "g1", "big": 7},
    }
    timestamps = [
        "2026-11-27T11:59:00Z", "2026-11-27t11:59:00z", "2026-11-27 11:59:00Z",
        "2026-11-27T11:59:00.1Z", "2026-11-27T11:59:00.123456Z", "2026-11-27T11:59:00.1234567Z",
        "2026-11-27T13:59:00+02:00", "2026-11-27T11:59:00-00:00", "2026-11-27T11:59:00",
        "2026-11-27T11:59:00Z\n", "2026-02-30T00:00:00Z", "2026-11-27T24:00:00Z",
        "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z", "2026-11-27T12:05:00Z",
        "2026-11-27T12:05:01Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+01:00",
    ]  # fmt: skip
    ids = [
        str(uuid.UUID(int=5)), str(uuid.UUID(int=5)).upper(), uuid.UUID(int=5).hex,
        "{" + str(uuid.UUID(int=5)) + "}", "urn:uuid:" + str(uuid.UUID(int=5)), "not-a-uuid", 12,
        # What int(text, 16) or bytes.fromhex would take but the canonical form is not.
        "0x000000-0000-0000-0000-000000000005", "+0000000-0000-0000-0000-000000000005",
        "0000000_-0000-0000-0000-000000000005", "0000000 -0000-0000-0000-000000000005",
        "00000000-0000-0000-0000-00000000000\u0665", "00000000-0000-0000-0000-00000000000g",
        "00000000-0000-0000-0000-0000000000-5", "00000000-0000-0000-0000-00000000005",
        "00000000-0000-0000-0000 000000000005", "00000000-0000-0000-0000-000000000005 ",
    ]  # fmt: skip
    found: list[dict[str, Any]] = []
    for kind, data in data_by_type.items():
        found.append(event(event_type=kind, data=dict(data)))
        for name in [*data, "extra"]:
            for value in odd:
                found.append(event(event_type=kind, data={**data, name: value}))
            if name in data:
                fewer = {k: v for k, v in data.items() if k != name}
                found.append(event(event_type=kind, data=fewer))
        found.append(event(event_type=kind, data={**data, "extra": 1, **dict.fromkeys(data)}))
    for name in ("event_type", "player_id", "game_id", "timestamp", "data", "event_id"):
        for value in [*odd, "Bad Type", "p:1", "p" * 128, "p" * 129]:
            found.append(event(**{name: value}))
        without = event(event_id=str(uuid.UUID(int=9)))
        del without[name]
        found.append(without)
    amounts: list[object] = [
        0, 5, 999_999_999, 1_000_000_000, 0.1, 2.675, 12.5, 99.99, 1e-05, 123456789.1234,
        1234567890.5, 0.30000000000000004, "0", "05", "9.90", "1.00000", "9.", ".5", "+5",
        " 9.9", "1e2", "999999999.9999", "0000000012", "\u0661\u0662", "9.99\n",
    ]  # fmt: skip
    found += [
        event(event_type="purchase", data={"amount": a, "currency": c, "sku": "s1"})
        for a in amounts
        for c in ("EUR", "eur", "EURO", "E1R")
    ]
    found += [event(timestamp=t) for t in timestamps * 2]  # twice: remembered texts too
    found += [event(event_id=i) for i in ids]
    raws = [json.dumps(e).encode() for e in found]
    head = (
        b'{"event_type":"player_login","player_id":"p","game_id":"g",'
        b'"timestamp":"2026-11-27T11:59:00Z",'
    )
    raws += [
        head + b'"data":{"score":1,"won":true,"x":1,"x":2}}',
        head + b'"data":{"big":123456789012345678901234567890}}',
        head + b'"data":{"n":NaN}}',
        b"\xef\xbb\xbf" + json.dumps(event()).encode(),
        b"[]",
        b"{",
        b"\xff",
    ]
    return raws


def test_the_fast_path_accepts_only_what_the_models_accept_and_builds_the_same_event() -> None:
    limits = ParseLimits()
    fast_hits = 0
    for raw in _variants():
        fast = fast_event(raw, NOW, limits)
        if fast is None:
            continue
        fast_hits += 1
        slow = judge_bytes(raw, now=NOW, limits=limits)
        # repr compares types as well as values (True is not 1, Decimal is not float) and order.
        assert repr(fast) == repr(slow), raw
    assert fast_hits > 100


def test_decoded_values_take_the_fast_path_and_it_agrees_with_the_models() -> None:
    """validate_event (a gateway batch's items) uses the same accept-only fast path."""
    limits = ParseLimits()
    fast_hits = 0
    for raw in _variants():
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if (
            type(decoded) is not dict
            or strict_json.depth_exceeds(decoded, limits.max_depth)
            or fast_value(orjson.loads(raw), NOW, limits) is None
        ):
            continue
        fast_hits += 1
        assert repr(validate_event(orjson.loads(raw), now=NOW)) == repr(
            judge_value(decoded, now=NOW, limits=limits)
        ), raw
    assert fast_hits > 100


def test_the_fast_path_takes_the_usual_events() -> None:
    for kind in ("match_completed", "player_login", "guild_joined", "purchase"):
        payload = event(event_type=kind, event_id=str(uuid.UUID(int=3)))
        if kind in ("player_login", "guild_joined"):
            payload["data"] = {"platform": "pc"}
        if kind == "purchase":
            payload["data"] = {"amount": 4.99, "currency": "EUR"}
        assert fast_event(json.dumps(payload).encode(), NOW, ParseLimits()) is not None
