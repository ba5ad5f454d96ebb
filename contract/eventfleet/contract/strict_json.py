"""Strict JSON, the one reader of every entry (gateway bodies, Kafka records): RFC 8259 with
two refusals on top, and a contract of "value or JsonProblem", never an exception.

- **Duplicate object keys** are refused (`duplicate_key`). RFC 8259 leaves their meaning
  undefined, and parsers disagree (first wins, last wins, error): a body that one reader takes
  as `"event_type": "purchase"` and another as `"match_completed"` is an attack on whoever
  checks before someone else counts.
- **Nesting deeper than `max_depth`** is refused (`too_deep`) before any recursive code sees the
  value: Python's json (and what runs after it) recurses per level and raised RecursionError.

`loads` decides. `is_plain` is the fast path's proof that what orjson returned is exactly what
`loads` would have returned, so that nearly every event pays for one orjson call and one walk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import accumulate
from typing import Any, Final, NamedTuple

import orjson

# A JSON string, escapes included (unrolled so that the regex engine never backtracks).
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS: Final = b"[]{}"
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in _BRACKETS)
# +1 for an opening bracket, -1 for a closing one, indexed by byte.
_STEP: Final = [1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256)]


class JsonProblem(NamedTuple):
    reason: str  # "not_utf8" | "invalid_json" | "too_deep" | "duplicate_key"
    message: str


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in `raw` (0 for a scalar), counted without recursion:
    strings are blanked out, then the brackets left are summed. UTF-8 continuation bytes are
    never ASCII, so a bracket byte outside a string is always structure. On invalid JSON the
    count is still bounded by the input's length, and the parser refuses the input anyway."""
    brackets = _STRING.sub(b'""', raw).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(0, *accumulate(map(_STEP.__getitem__, brackets)))


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return found


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes, *, max_depth: int) -> object:
    """The value of `raw`, or a JsonProblem saying why it is not strict JSON. Never raises."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return JsonProblem("not_utf8", f"not UTF-8: invalid byte at position {error.start}")
    depth = nesting_depth(raw)
    if depth > max_depth:
        return JsonProblem(
            "too_deep", f"arrays and objects nest {depth} deep; the limit is {max_depth}"
        )
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_refuse_constant)
    except _DuplicateKeyError as error:
        return JsonProblem("duplicate_key", f"the key {error.key!r} appears twice in one object")
    except (ValueError, RecursionError) as error:
        return JsonProblem("invalid_json", f"not valid JSON: {error}")


def depth_exceeds(value: object, max_depth: int) -> bool:
    """Whether a decoded value nests deeper than `max_depth` (without recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if type(item) is dict:
            children = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def is_plain(raw: bytes, value: object, max_depth: int) -> bool:
    """Whether `value`, orjson's reading of `raw`, has what `loads` checks: nesting within
    `max_depth` and no duplicate key. Under 1 us for an event; nearly every event takes this
    path instead of `loads`. (orjson reads an integer beyond 64 bits as a float: that is the
    fast path's to check, in the few places a float may stand.)

    Duplicate keys: orjson keeps the last of them silently, so colons are counted. Outside
    strings a colon only ever separates a key from its value, so a JSON text holds one colon
    per key plus the colons inside its strings, and orjson writes `value` back with exactly its
    own keys' and strings' colons. Equal counts mean no key (with its value) was dropped. Only
    an escaped colon (\\u003a) could put a colon in a string that `raw` does not show, so a text
    with escapes is counted by walking the value instead.

    Depth: nesting cannot exceed the brackets `raw` holds; only when it holds more than
    `max_depth` is the value walked."""
    if raw.count(b"{") + raw.count(b"[") > max_depth and depth_exceeds(value, max_depth):
        return False
    if b"\\" in raw:  # rare: escapes (one byte searched, at memchr's speed)
        return b"\\u003" not in raw and _colons(value) == raw.count(b":")
    try:
        written = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return written.count(b":") == raw.count(b":")


def _colons(value: object) -> int:
    """The keys of a decoded value plus the colons in its keys and strings, without recursion."""
    colons = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        items: Iterable[Any]
        if type(item) is dict:
            colons += len(item) + "".join(item).count(":")
            items = item.values()
        elif type(item) is list:
            items = item
        else:
            continue
        for child in items:
            if type(child) is str:
                colons += child.count(":")
            elif type(child) is dict or type(child) is list:
                stack.append(child)
    return colons
