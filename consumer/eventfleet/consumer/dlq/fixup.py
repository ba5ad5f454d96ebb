"""What a replay sends for one dead letter: the stored bytes, optionally edited, judged by the
contract exactly as the gateway judges a request. Pure.

An edit is a JSON merge patch (RFC 7386: objects merge, `null` removes a key, anything else
replaces) and `--set PATH=VALUE` assignments applied after it (`data.score=0`, `player_id="p7"`).
A row whose bytes are not a JSON object cannot be edited: it is refused with the reason, never
sent as it is.

The event goes back with an event_id: its own, or, for an event that had none, the id the
consumers derive from its source position (`derived_event_id`). So sending a row twice (a replay
that stopped between Kafka's acknowledgement and PostgreSQL's commit, then ran again) counts once
downstream, as any retried event does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from eventfleet.contract import strict_json
from eventfleet.contract.events import (
    DEFAULT_LIMITS,
    ParseLimits,
    Rejection,
    derived_event_id,
    parse_event,
)

Path = tuple[str, ...]
# A fix-up is typed by a person; deep enough for any event, shallow enough for recursion.
MAX_PATCH_DEPTH: Final = 32


class FixupError(ValueError):
    """A patch or an assignment the user gave cannot be understood."""


@dataclass(frozen=True)
class Fixup:
    patch: Mapping[str, object] | None = None
    sets: tuple[tuple[Path, object], ...] = field(default=())

    @property
    def empty(self) -> bool:
        return self.patch is None and not self.sets


@dataclass(frozen=True)
class DeadLetter:
    id: int
    consumer_group: str
    topic: str
    partition: int
    offset: int
    raw: bytes


@dataclass(frozen=True)
class Send:
    topic: str
    key: bytes
    value: bytes
    event_id: uuid.UUID


@dataclass(frozen=True)
class Refused:
    reason: str
    message: str


def parse_patch(text: str) -> Mapping[str, object]:
    value = strict_json.loads(text.encode(), max_depth=MAX_PATCH_DEPTH)
    if isinstance(value, strict_json.JsonProblem):
        raise FixupError(f"--patch: {value.message}")
    if not isinstance(value, dict):
        raise FixupError('--patch must be a JSON object, e.g. \'{"data": {"score": 0}}\'')
    return value


def parse_set(text: str) -> tuple[Path, object]:
    """`a.b=VALUE`: VALUE is JSON when it parses as JSON, else the text itself."""
    name, equals, raw_value = text.partition("=")
    path = tuple(name.strip().split("."))
    if not equals or not all(path):
        raise FixupError(f"--set {text!r}: expected FIELD=VALUE, e.g. data.score=0")
    value = strict_json.loads(raw_value.encode(), max_depth=MAX_PATCH_DEPTH)
    return path, raw_value if isinstance(value, strict_json.JsonProblem) else value


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386: the result of applying `patch` to `target` (neither is modified)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def set_path(document: dict[str, object], path: Path, value: object) -> dict[str, object]:
    """`document` with `value` at `path`, objects created along the way (a copy)."""
    head, *rest = path
    if not rest:
        return {**document, head: value}
    inner = document.get(head)
    return {
        **document,
        head: set_path(inner if isinstance(inner, dict) else {}, tuple(rest), value),
    }


def edited(raw: bytes, fixup: Fixup, limits: ParseLimits) -> bytes | Refused:
    value = strict_json.loads(raw, max_depth=limits.max_depth)
    if isinstance(value, strict_json.JsonProblem):
        return Refused(value.reason, f"cannot apply the fix-up: {value.message}")
    if not isinstance(value, dict):
        return Refused("not_an_object", "cannot apply the fix-up: the event is not a JSON object")
    document: object = merge_patch(value, fixup.patch) if fixup.patch is not None else value
    for path, new in fixup.sets:
        document = set_path(document if isinstance(document, dict) else {}, path, new)
    return json.dumps(document, separators=(",", ":")).encode()


def plan(
    letter: DeadLetter,
    fixup: Fixup,
    *,
    topic: str | None,
    now: datetime,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> Send | Refused:
    """What replaying `letter` sends (to `topic`, or back where it came from), or why not."""
    raw = letter.raw if fixup.empty else edited(letter.raw, fixup, limits)
    if isinstance(raw, Refused):
        return raw
    verdict = parse_event(raw, now=now, limits=limits)
    if isinstance(verdict, Rejection):
        return Refused(str(verdict.reason), verdict.message)
    event_id = verdict.event_id or derived_event_id(letter.topic, letter.partition, letter.offset)
    record = verdict.with_event_id(event_id).to_json_dict()
    value = json.dumps(record, separators=(",", ":")).encode()
    return Send(topic or letter.topic, verdict.player_id.encode(), value, event_id)
