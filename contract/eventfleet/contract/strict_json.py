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
# orjson reads integers beyond 64 bits as floats where Python's json keeps them exact.
_INEXACT: Final = float(2**63)


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
    """Whether `value`, orjson's reading of `raw`, is provably what `loads` returns: nesting
    within `max_depth`, no float that was a big integer, and no duplicate key.

    orjson keeps the last of duplicate keys silently, so the keys are counted instead: outside
    strings a colon only ever separates a key from its value, so `raw` holds one colon per key
    plus the colons inside its strings. If the keys and string colons of `value` add up to all
    of `raw`'s colons, no key (and no value with it) was dropped. Only an escaped colon (\\u003a)
    could make a string hold a colon that `raw` does not show: such input is not plain."""
    if raw.count(b"{") + raw.count(b"[") <= max_depth and orjson.dumps(value) == raw:
        # What the gateway sends: compact JSON exactly as orjson writes it, so orjson's reading
        # holds every key that `raw` does (a dropped duplicate would shorten the re-encoding) and
        # every number as written, and it cannot nest deeper than its brackets. 1 us an event
        # less than the walk below, which other producers' JSON takes.
        return True
    if b"\\u003" in raw:
        return False
    return plain_colons(value, max_depth) == raw.count(b":")


def plain_colons(value: object, max_depth: int) -> int:
    """For a decoded array or object within `max_depth` that holds no float at or beyond 2**63
    (which may have been a big integer): its keys plus the colons in its keys and strings.
    -1 otherwise. One walk without recursion; this runs once per event."""
    if not (type(value) is dict or type(value) is list):
        return -1
    colons = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if depth > max_depth:
            return -1
        items: Iterable[Any]
        if type(item) is dict:
            colons += len(item) + "".join(item).count(":")
            items = item.values()
        else:
            items = item
        for child in items:
            kind = type(child)
            if kind is str:
                if ":" in child:
                    colons += child.count(":")
            elif kind is dict or kind is list:
                push((child, depth + 1))
            elif kind is float and not -_INEXACT < child < _INEXACT:
                return -1
    return colons
