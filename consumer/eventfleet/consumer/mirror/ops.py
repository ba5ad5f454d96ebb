"""The Redis values a mode describes and the mirror writes (no I/O).

They are the vocabulary shared by the modes, which build them from PostgreSQL's rows, and the
mirror, which packs and sends them: defined here, on the mirror's side, so that the mirror needs
nothing of the mode interface. Values are absolute (from PostgreSQL), never increments.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

# Built per row or per board entry of every batch: named tuples are cheap to create.


class HashSet(NamedTuple):
    """Set the fields of a Redis hash (values are ASCII text; ops of one batch usually share
    the same field names, which lets the mirror send them as one command)."""

    key: str
    fields: tuple[str, ...]
    values: tuple[str, ...]
    # The values already packed as RESP bulk strings, one per field (`values` is then empty):
    # PostgreSQL packs a returned row's values cheaper than Python does.
    packed: str | None = None


class HashChange(NamedTuple):
    """Set the fields of a Redis hash that one upsert changed: `packed` holds `pairs` pairs of
    RESP bulk strings (field, value), `version` and its new value first. Applied only to a hash
    at the version just before (or to no hash, for version 1): a hash further behind missed a
    change, and is rewritten whole from PostgreSQL instead (see sync)."""

    key: str
    pairs: int
    packed: str


class ZScore(NamedTuple):
    """Set a member's score in a sorted set that keeps only its `top_n` best members."""

    key: str
    member: str
    score: int
    top_n: int
    expire_at: datetime | None = None


RedisOp = HashSet | HashChange | ZScore
# Each full board's floor (Redis key -> lowest score it keeps): a member below it cannot enter
# the board's top N, so no value needs to be built for it (see floors).
BoardFloors = Mapping[str, int]
