"""What `eventfleet dlq replay` sends for a dead letter (pure): merge patches, `--set`, the
contract's verdict, and the event_id a replay keeps; and which rows a filter selects."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventfleet.consumer.dlq.fixup import (
    DeadLetter,
    Fixup,
    FixupError,
    Refused,
    Send,
    merge_patch,
    parse_patch,
    parse_set,
    plan,
    set_path,
)
from eventfleet.consumer.dlq.selection import Selection, SelectionError, parse_when, where
from eventfleet.contract.events import derived_event_id

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
EVENT = {"event_type": "match_completed", "player_id": "p1", "game_id": "g1",
         "timestamp": "2026-12-01T10:00:00Z", "data": {"score": "lots", "won": True}}  # fmt: skip


def letter(raw: bytes, offset: int = 41) -> DeadLetter:
    return DeadLetter(7, "stats-group", "player.events", 2, offset, raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


def test_merge_patch_merges_objects_removes_nulls_and_replaces_the_rest() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    patch = {"a": None, "b": {"c": 20, "x": {"y": 1}}, "e": [3]}
    assert merge_patch(target, patch) == {"b": {"c": 20, "d": 3, "x": {"y": 1}}, "e": [3]}
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}  # not modified
    assert merge_patch({"a": 1}, [1]) == [1]
    assert merge_patch([1], {"a": None, "b": 2}) == {"b": 2}


@given(json_values, json_values)
def test_a_merge_patch_applied_twice_is_applied_once(target: object, patch: object) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


def test_set_assigns_a_path_and_reads_json_values_or_text() -> None:
    assert parse_set("data.score=0") == (("data", "score"), 0)
    assert parse_set("player_id=p7") == (("player_id",), "p7")
    assert parse_set('player_id="p 7"') == (("player_id",), "p 7")
    assert parse_set("data.won=true") == (("data", "won"), True)
    assert set_path({"data": {"a": 1}}, ("data", "b"), 2) == {"data": {"a": 1, "b": 2}}
    assert set_path({"data": 5}, ("data", "b"), 2) == {"data": {"b": 2}}
    for bad in ("score", "=1", "data..score=1", ".x=1"):
        with pytest.raises(FixupError):
            parse_set(bad)


def test_a_patch_must_be_a_json_object() -> None:
    assert parse_patch('{"data": {"score": 1}}') == {"data": {"score": 1}}
    for bad in ("[1]", "{", '{"a": 1, "a": 2}', "[" * 40 + "]" * 40):
        with pytest.raises(FixupError):
            parse_patch(bad)


def test_a_fixed_event_is_sent_under_the_id_its_position_derives_when_it_had_none() -> None:
    fixup = Fixup(sets=((("data", "score"), 9),))
    sent = plan(letter(json.dumps(EVENT).encode()), fixup, topic=None, now=NOW)
    assert isinstance(sent, Send)
    assert sent.topic == "player.events"
    assert sent.key == b"p1"
    assert sent.event_id == derived_event_id("player.events", 2, 41)
    assert json.loads(sent.value) == {**EVENT, "event_id": str(sent.event_id),
                                      "data": {"score": 9, "won": True}}  # fmt: skip
    again = plan(letter(json.dumps(EVENT).encode()), fixup, topic="elsewhere", now=NOW)
    assert isinstance(again, Send)
    assert (again.event_id, again.topic) == (sent.event_id, "elsewhere")


def test_an_event_keeps_its_own_id() -> None:
    own = str(uuid.uuid4())
    raw = json.dumps({**EVENT, "event_id": own, "data": {"score": 1, "won": False}}).encode()
    sent = plan(letter(raw), Fixup(), topic=None, now=NOW)
    assert isinstance(sent, Send)
    assert str(sent.event_id) == own


def test_what_the_contract_still_refuses_is_not_sent() -> None:
    as_stored = plan(letter(json.dumps(EVENT).encode()), Fixup(), topic=None, now=NOW)
    assert isinstance(as_stored, Refused)
    assert as_stored.reason == "invalid_data"
    assert "score" in as_stored.message
    broken = plan(letter(b'{"event_type": '), Fixup(sets=((("a",), 1),)), topic=None, now=NOW)
    assert isinstance(broken, Refused)
    assert broken.reason == "invalid_json"
    assert "cannot apply the fix-up" in broken.message
    listed = plan(letter(b"[1, 2]"), Fixup(patch={"a": 1}), topic=None, now=NOW)
    assert listed == Refused(
        "not_an_object", "cannot apply the fix-up: the event is not a JSON object"
    )


@given(
    st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
    st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)
def test_no_row_and_no_patch_makes_the_plan_raise(
    raw: bytes, patch: dict[str, object] | None
) -> None:
    verdict = plan(letter(raw), Fixup(patch=patch), topic=None, now=NOW)
    assert isinstance(verdict, Send | Refused)
    if isinstance(verdict, Send):
        assert plan(
            DeadLetter(1, "g", "t", 0, 0, verdict.value), Fixup(), topic=None, now=NOW
        ) == Send(
            "t", verdict.key, verdict.value, verdict.event_id
        )  # what a replay sends is itself valid, and keeps its id


def test_when_is_an_age_or_an_iso_time() -> None:
    assert parse_when("90m", now=NOW) == NOW - timedelta(minutes=90)
    assert parse_when("2w", now=NOW) == NOW - timedelta(weeks=2)
    assert parse_when("2026-12-01T08:00:00Z", now=NOW) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert parse_when("2026-12-01T08:00:00", now=NOW) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert parse_when("2026-12-01T09:00:00+01:00", now=NOW) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    for bad in ("yesterday", "5y", "-3h", "999999w", ""):
        with pytest.raises(SelectionError):
            parse_when(bad, now=NOW)


@given(st.text(max_size=40))
def test_any_text_is_a_time_or_a_clear_error(text: str) -> None:
    try:
        when = parse_when(text, now=NOW)
    except SelectionError as error:
        message = str(error)
    else:
        assert when.tzinfo is not None
        return
    assert repr(text) in message


@given(st.integers(0, 999_999), st.sampled_from("smhdw"))
def test_an_age_counts_back_from_now(amount: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[unit] * amount
    try:
        when = parse_when(f"{amount}{unit}", now=NOW)
    except SelectionError:
        assert seconds > 36_500 * 86_400
    else:
        assert NOW - when == timedelta(seconds=seconds)


def test_a_selection_is_a_condition_with_one_parameter_per_placeholder() -> None:
    assert where(Selection()) == ("TRUE", [])
    full = Selection(
        group="g", reasons=("a", "b"), since=NOW, until=NOW, ids=(1, 2), replayed=False
    )
    condition, params = where(full)
    assert condition.count("%s") == len(params) == 5
    assert condition.endswith("replayed_at IS NULL")
    assert where(Selection(replayed=True))[0] == "replayed_at IS NOT NULL"
