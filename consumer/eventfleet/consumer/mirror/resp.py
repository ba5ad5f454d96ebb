"""A batch's Redis values as packed RESP commands (pure: no Redis needed).

A batch is sent as one pipelined write, packed here rather than by redis-py (whose pure-Python
packing of tens of thousands of arguments per batch cost more than the database work): hashes
sharing their field names go as one small Lua script call, and each sorted set gets one script
call with all its members (ZADD, the trim to its top N, its expiry). Both writes keep the newer
value when two replicas (or a resync and a batch) race: hashes compare PostgreSQL's row version,
sorted sets use ZADD GT (boards never go down).

Boards carry a version of their own in a registry hash (BoardBook): the top N each board is
complete for. A batch brings only the members it moved, so its write can tell, in the same
script, that the board it lands on is not the complete one the registry knows: the board is gone
(evicted) or was built for a smaller N (topN raised). It then joins the stale set and is
rebuilt alone from PostgreSQL (sync), without a full rebuild.

A batch's stats hashes carry only the values their upsert changed (HashChange): their script
applies a change only on top of the version just before it, and replies with the hashes further
behind (sync rewrites them whole).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final, NamedTuple

from eventfleet.consumer.mirror.ops import HashChange, HashSet, RedisOp, ZScore

# KEYS: the hashes; ARGV: the field count n, n field names, then n values per key.
# A hash whose `version` (PostgreSQL's row version, growing with every update) is already at or
# above the one written is left alone: a resync that read PostgreSQL before another replica's
# newer batch cannot put older values back over newer ones.
_SET_HASHES: Final = """
local n = tonumber(ARGV[1])
local vpos = 0
for j = 1, n do
  if ARGV[1 + j] == 'version' then vpos = j end
end
for i, key in ipairs(KEYS) do
  local base = 1 + n + (i - 1) * n
  local current = vpos > 0 and redis.call('HGET', key, 'version')
  if not current or tonumber(current) < tonumber(ARGV[base + vpos]) then
    local args = {}
    for j = 1, n do
      args[2 * j - 1] = ARGV[1 + j]
      args[2 * j] = ARGV[base + j]
    end
    redis.call('HSET', key, unpack(args))
  end
end
return #KEYS
"""
_CHUNK: Final = 500  # hashes per script call (Lua's unpack has a stack limit)
# KEYS: the stale set, then the hashes; ARGV per hash: the pair count n, then n (field, value)
# pairs, ('version', v) first. A hash at version v - 1 (or none, for v = 1) gets the pairs; one
# at v or above is newer already (another writer got there first); one further behind missed a
# change: it joins the stale set in the same step (so that a crash before its repair still
# shows) and is returned, to be rewritten whole from PostgreSQL.
_CHANGE_HASHES: Final = """
local stale = {}
local at = 1
for i = 2, #KEYS do
  local n = tonumber(ARGV[at])
  local version = tonumber(ARGV[at + 2])
  local current = tonumber(redis.call('HGET', KEYS[i], 'version') or '0')
  if current == version - 1 then
    redis.call('HSET', KEYS[i], unpack(ARGV, at + 1, at + 2 * n))
  elseif current < version then
    stale[#stale + 1] = KEYS[i]
  end
  at = at + 1 + 2 * n
end
if #stale > 0 then
  redis.call('SADD', KEYS[1], unpack(stale))
end
return stale
"""


# KEYS: the board, the board registry, the stale set; ARGV: top N, expiry (Unix seconds, 0:
# none), '1' when the write is the board's whole top N from PostgreSQL (a rebuild's or a
# repair's), then score, member pairs. Replies {lost, ZCARD, ZRANGE 0 0 WITHSCORES} (the last two
# for the floors). A batch's write on a board the registry knows, that is gone or complete only
# for fewer members, marks it lost: into the stale set, to be rebuilt from PostgreSQL.
_WRITE_BOARD: Final = """
local board, registry = KEYS[1], KEYS[2]
local n, expire_at = tonumber(ARGV[1]), tonumber(ARGV[2])
local complete = ARGV[3] == '1'
if expire_at > 0 and expire_at <= tonumber(redis.call('TIME')[1]) then
  redis.call('HDEL', registry, board)
  return {0, 0, {}}
end
local built = redis.call('HGET', registry, board)
local built_n = built and tonumber(string.match(built, '^(%d+)'))
local lost = 0
if not complete and built_n and (built_n < n or redis.call('EXISTS', board) == 0) then
  lost = 1
end
for i = 4, #ARGV, 1000 do
  redis.call('ZADD', board, 'GT', unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('ZREMRANGEBYRANK', board, 0, -(n + 1))
if expire_at > 0 then redis.call('EXPIREAT', board, expire_at) end
if lost == 1 then
  redis.call('SADD', KEYS[3], board)
elseif complete or not built_n or built_n > n then
  redis.call('HSET', registry, board, n .. ':' .. ARGV[2])
end
return {lost, redis.call('ZCARD', board), redis.call('ZRANGE', board, 0, 0, 'WITHSCORES')}
"""


class BoardBook(NamedTuple):
    """Where a mirror keeps its boards' versions (the registry: board key -> 'N:expiry') and
    the keys waiting for a rewrite from PostgreSQL (the stale set)."""

    registry: str
    stale_set: str


def pack(*args: str | int) -> str:
    """One command in RESP. Every value here is ASCII (ids, numbers, ISO times, JSON of type
    names), so a string's length is its byte length."""
    parts = [f"*{len(args)}\r\n"]
    for arg in args:
        text = str(arg)
        parts.append(f"${len(text)}\r\n{text}\r\n")
    return "".join(parts)


def _bulk(texts: Iterable[str]) -> str:
    """RESP bulk strings of ASCII texts, without a command header (tens of thousands of values
    per batch: no per-value function call)."""
    return "".join([f"${len(text)}\r\n{text}\r\n" for text in texts])


# The pair counts of changes as bulk strings, built once (one per changed hash per batch).
_COUNTS: Final = [_bulk((str(n),)) for n in range(64)]


def change_commands(changes: Iterable[HashChange], stale_set: str) -> list[str]:
    """The packed script calls that apply `changes` (a later change of a key replaces an
    earlier one: its version then skips one, and the hash is rewritten whole). Each call
    replies with the keys it found stale."""
    by_key = {change.key: change for change in changes}
    keys = list(by_key)
    packed = []
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        changes_of_chunk = [by_key[key] for key in chunk]
        # What pack("EVAL", script, 1 + len(chunk), stale_set, *chunk, and per key: its count
        # and pairs) gives, built from pieces.
        count = 4 + len(chunk) + sum(1 + 2 * change.pairs for change in changes_of_chunk)
        packed.append(
            f"*{count}\r\n"
            + _bulk(("EVAL", _CHANGE_HASHES, str(1 + len(chunk)), stale_set))
            + _bulk(chunk)
            + "".join(
                [
                    (_COUNTS[c.pairs] if c.pairs < len(_COUNTS) else _bulk((str(c.pairs),)))
                    + c.packed
                    for c in changes_of_chunk
                ]
            )
        )
    return packed


def commands(ops: Iterable[RedisOp], book: BoardBook, *, complete: bool = False) -> list[str]:
    """The packed commands that apply `ops` (later values of a key win): the hashes' script
    calls, then one board_commands call per board; changes go through change_commands."""
    hashes: list[HashSet] = []
    scores: list[ZScore] = []
    for op in ops:
        if isinstance(op, HashSet):
            hashes.append(op)
        elif isinstance(op, ZScore):
            scores.append(op)
        else:
            raise TypeError("a HashChange needs change_commands")
    return [*hash_commands(hashes), *board_commands(scores, book, complete=complete)[0]]


def hash_commands(ops: Iterable[HashSet]) -> list[str]:
    """The packed script calls that write whole hashes (later values of a key win)."""
    hashes: dict[tuple[str, ...], dict[str, str]] = {}  # fields -> key -> packed values
    for op in ops:
        values = op.packed if op.packed is not None else _bulk(op.values)
        hashes.setdefault(op.fields, {})[op.key] = values
    packed = []
    for fields, by_key in hashes.items():
        keys = list(by_key)
        head = _bulk(fields)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            # What pack("EVAL", script, len(chunk), *chunk, len(fields), *fields, *values)
            # gives, built from pieces.
            count = 3 + len(chunk) + 1 + len(fields) + len(chunk) * len(fields)
            packed.append(
                f"*{count}\r\n"
                + _bulk(("EVAL", _SET_HASHES, str(len(chunk))))
                + _bulk(chunk)
                + _bulk((str(len(fields)),))
                + head
                + "".join([by_key[key] for key in chunk])
            )
    return packed


def board_commands(
    ops: Iterable[ZScore], book: BoardBook, *, complete: bool = False
) -> tuple[list[str], dict[str, int]]:
    """One packed script call per board (ZADD GT of its members, its trim and expiry, its
    version in the registry), and the boards in that order with their top N. `complete`: the
    members are the board's whole top N (a rebuild's or a repair's)."""
    boards: dict[str, dict[str, int]] = {}
    limits: dict[str, tuple[int, datetime | None]] = {}
    for op in ops:
        boards.setdefault(op.key, {})[op.member] = op.score
        limits[op.key] = (op.top_n, op.expire_at)
    packed = []
    head = _bulk((book.registry, book.stale_set))
    for key, members in boards.items():
        # Every board only grows (sums of non-negative scores, maxima, counts): GT keeps the
        # highest value, so a resync's older snapshot never lowers a newer score.
        flat = "".join(
            [
                f"${len(score)}\r\n{score}\r\n${len(member)}\r\n{member}\r\n"
                for member, score in ((m, str(s)) for m, s in members.items())
            ]
        )
        top_n, expire_at = limits[key]
        expiry = str(int(expire_at.timestamp())) if expire_at is not None else "0"
        packed.append(
            f"*{9 + 2 * len(members)}\r\n"
            + _bulk(("EVAL", _WRITE_BOARD, "3", key))
            + head
            + _bulk((str(top_n), expiry, "1" if complete else "0"))
            + flat
        )
    return packed, {key: limits[key][0] for key in boards}
