"""Board floors: leaving out the members a board's top N would trim away at once (no I/O).

A board keeps only its top N, and most of a batch's players are not in it: each one written would
be inserted and trimmed away again at once. The mirror remembers each full board's lowest kept
score (its floor) and leaves out members below it. That is safe because a floor never overstates
the board's true Nth score: the N members above it have at least those scores in PostgreSQL, where
scores only grow, whatever Redis went through since (a flush, another replica's writes, a rebuild).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from eventfleet.consumer.mirror.ops import RedisOp, ZScore

# Floors remembered per process, at most this many boards (daily and weekly keys come and go).
_FLOORS_LIMIT: Final = 10_000


def above_floors(ops: list[RedisOp], floors: Mapping[str, int]) -> list[RedisOp]:
    """`ops` without the board members scoring below their board's floor (they could not be in
    its top N); a member level with the floor stays (ties are ordered by name)."""
    if not floors:
        return ops
    return [
        op for op in ops if not isinstance(op, ZScore) or op.score >= floors.get(op.key, op.score)
    ]


def floor_of(top_n: int, size: int, lowest: list[Any]) -> int | None:
    """A board's floor from ZCARD and ZRANGE 0 0 WITHSCORES after its trim: the lowest kept
    score once the board holds its top N (None while it has room: anyone may enter). The
    reply is [member, score] in RESP2 (score as text) and [[member, score]] in RESP3."""
    if lowest and isinstance(lowest[0], list):
        lowest = lowest[0]
    if size < top_n or len(lowest) != 2:
        return None
    return int(float(lowest[1]))


def learn_floors(floors: dict[str, int], boards: Mapping[str, int], replies: list[Any]) -> None:
    """Update `floors` in place from a write's replies: for each written board of `boards`
    (key -> top N), in order, its ZCARD and its ZRANGE 0 0 WITHSCORES after the trim. A board
    with room left loses its floor; all are forgotten when the limit would be passed."""
    if len(floors) + len(boards) > _FLOORS_LIMIT:
        floors.clear()
    for (key, top_n), size, lowest in zip(
        boards.items(), replies[0::2], replies[1::2], strict=True
    ):
        floor = floor_of(top_n, int(size), lowest)
        if floor is None:
            floors.pop(key, None)
        else:
            floors[key] = floor
