"""Which dead letters a command means, and that choice as a SQL condition. Pure.

Times are given as an age (`30m`, `2h`, `7d`, `1w`: that long before now) or as an ISO 8601
time; a time without a zone is UTC, as every time in the pipeline is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

_AGE: Final = re.compile(r"(\d{1,6})([smhdw])", re.ASCII)
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
# Far enough for any retention, near enough that `now - age` never leaves datetime's range.
MAX_AGE: Final = timedelta(days=36_500)


class SelectionError(ValueError):
    """A filter the user gave cannot be understood; the message says what was expected."""


@dataclass(frozen=True)
class Selection:
    group: str | None = None
    reasons: tuple[str, ...] = ()
    since: datetime | None = None  # failed_at >= since
    until: datetime | None = None  # failed_at < until
    ids: tuple[int, ...] = ()
    replayed: bool | None = None  # None: either; False: not replayed yet; True: replayed


def parse_when(text: str, *, now: datetime) -> datetime:
    """`text` as a point in time: an age before `now`, or an ISO 8601 time (UTC if no zone)."""
    stripped = text.strip()
    age = _AGE.fullmatch(stripped)
    if age:
        amount = timedelta(seconds=int(age[1]) * _UNIT_SECONDS[age[2]])
        if amount > MAX_AGE:
            raise SelectionError(f"{text!r}: an age may be at most {MAX_AGE.days} days")
        return now - amount
    try:
        when = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise SelectionError(
            f"{text!r} is neither an age (e.g. 30m, 2h, 7d, 1w) nor an ISO 8601 time "
            "(e.g. 2026-12-01T08:00:00Z)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def where(selection: Selection) -> tuple[str, list[object]]:
    """The selection as a condition on dlq_events and its parameters (psycopg2 `%s` style)."""
    clauses: list[str] = []
    params: list[object] = []
    if selection.group is not None:
        clauses.append("consumer_group = %s")
        params.append(selection.group)
    if selection.reasons:
        clauses.append("reason = ANY(%s)")
        params.append(list(selection.reasons))
    if selection.since is not None:
        clauses.append("failed_at >= %s")
        params.append(selection.since)
    if selection.until is not None:
        clauses.append("failed_at < %s")
        params.append(selection.until)
    if selection.ids:
        clauses.append("id = ANY(%s)")
        params.append(list(selection.ids))
    if selection.replayed is not None:
        clauses.append("replayed_at IS NOT NULL" if selection.replayed else "replayed_at IS NULL")
    return " AND ".join(clauses) or "TRUE", params
