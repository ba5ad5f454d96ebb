"""Redis as a disposable mirror of PostgreSQL.

Values are absolute (from PostgreSQL), so writing them again is harmless. A marker hash
`eventfleet:synced:{mode}:{group}` says "this db holds a complete copy, up to these offsets": it
is created by a full resync and each batch's write updates its partitions' offsets in the same
pipeline, after the values. If Redis restarts empty or is flushed, the marker is gone and the next
publish rebuilds everything from PostgreSQL. When the mirror cannot be sure of Redis (at start,
after a Redis error, while PostgreSQL work went on without Redis, or after a crash between a
commit and its Redis write), it compares the marker's offsets with PostgreSQL's and rebuilds if
Redis is behind.

A batch is sent as one pipelined write, packed here rather than by redis-py (whose pure-Python
packing of tens of thousands of arguments per batch cost more than the database work): hashes
sharing their field names go as one small Lua script call, and each sorted set gets one ZADD
with all its members, then one trim to its top N and its expiry. Both writes keep the newer value
when two replicas (or a resync and a batch) race: hashes compare PostgreSQL's row version, sorted
sets use ZADD GT (boards never go down).

A batch's stats hashes carry only the values their upsert changed (HashChange: 4 to 9 of 18
fields, half of Redis's work per hash). Such a change is complete only on top of the version just
before it, so the script applies it there alone. A hash further behind (a failed write, an
evicted key, an older write landing late) is put into a stale set in the same step and rewritten
whole from PostgreSQL right after; the stale set outlives a crash, and while it is not empty the
mirror is not trusted (the next check rebuilds everything).

A board keeps only its top N, and most of a batch's players are not in it: each one written would
be inserted and trimmed away again at once. The mirror remembers each full board's lowest kept
score (its floor) and leaves out members below it. That is safe because a floor never overstates
the board's true Nth score: the N members above it have at least those scores in PostgreSQL, where
scores only grow, whatever Redis went through since (a flush, another replica's writes, a rebuild).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import redis

from eventfleet.consumer.modes.base import HashChange, HashSet, RedisOp, ZScore

log = logging.getLogger(__name__)
MARKER_PREFIX: Final = "eventfleet:synced:"
STALE_PREFIX: Final = "eventfleet:stale:"  # a set of hashes that missed a change, until rewritten
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


def commands(ops: Iterable[RedisOp]) -> list[str]:
    """The packed commands that apply `ops` (later values of a key win); changes go through
    change_commands."""
    hashes: dict[tuple[str, ...], dict[str, str]] = {}  # fields -> key -> packed values
    boards: dict[str, dict[str, int]] = {}
    limits: dict[str, tuple[int, datetime | None]] = {}
    for op in ops:
        if isinstance(op, HashSet):
            values = op.packed if op.packed is not None else _bulk(op.values)
            hashes.setdefault(op.fields, {})[op.key] = values
        elif isinstance(op, ZScore):
            boards.setdefault(op.key, {})[op.member] = op.score
            limits[op.key] = (op.top_n, op.expire_at)
        else:
            raise TypeError("a HashChange needs change_commands")
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
    for key, members in boards.items():
        # Every board only grows (sums of non-negative scores, maxima, counts): GT keeps the
        # highest value, so a resync's older snapshot never lowers a newer score.
        flat = "".join(
            [
                f"${len(score)}\r\n{score}\r\n${len(member)}\r\n{member}\r\n"
                for member, score in ((m, str(s)) for m, s in members.items())
            ]
        )
        packed.append(f"*{3 + 2 * len(members)}\r\n" + _bulk(("ZADD", key, "GT")) + flat)
        top_n, expire_at = limits[key]
        packed.append(pack("ZREMRANGEBYRANK", key, 0, -(top_n + 1)))
        if expire_at is not None:
            packed.append(pack("EXPIREAT", key, int(expire_at.timestamp())))
    return packed


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


TopicPartition = tuple[str, int]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _field(tp: TopicPartition) -> str:
    return f"{tp[0]}/{tp[1]}"


class RedisMirror:
    def __init__(self, url: str, db: int, name: str, prefix: str) -> None:
        # The db comes from the settings, not the URL's path (redis-py lets the URL win).
        parts = urlsplit(url)
        self.client = redis.Redis.from_url(
            urlunsplit(parts._replace(path=f"/{db}")),
            socket_timeout=5,
            socket_connect_timeout=3,
            health_check_interval=30,
        )
        self.marker = MARKER_PREFIX + name
        self.stale_set = STALE_PREFIX + name
        self.prefix = prefix
        self.dirty = True  # compare the marker with PostgreSQL before trusting the db
        self.resyncs = 0
        self.rewritten = 0  # hashes rewritten whole because they had missed a change
        self.floors: dict[str, int] = {}  # board key -> lowest score kept (full boards only)

    def close(self) -> None:
        self.client.close()

    def _send(self, packed: list[str]) -> list[Any]:
        """Pipeline packed commands on one connection; raises on the first error reply."""
        pool = self.client.connection_pool
        connection = pool.get_connection()
        try:
            # One buffer: redis-py makes a sendall() per item, and a batch of boards is tens of
            # small commands (each of which also woke Redis up on its own). redis-py leaves
            # these two unannotated.
            connection.send_packed_command(["".join(packed).encode()])  # type: ignore[no-untyped-call]
            replies = [connection.read_response() for _ in packed]  # raises on an error reply
        except BaseException:
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(connection)
        return replies

    def publish(
        self,
        ops: list[RedisOp],
        offsets: dict[TopicPartition, int],
        *,
        snapshot: Callable[[], Iterator[list[RedisOp]]],
        stored: Callable[[], dict[TopicPartition, int]],
        reread: Callable[[list[str]], list[RedisOp]] | None = None,
    ) -> None:
        """Write a batch's values (and its partitions' offsets into the marker); rebuild
        everything from PostgreSQL when Redis may be missing values, and rewrite the hashes
        that missed a change with what `reread` reads from PostgreSQL. Raises redis.RedisError
        when Redis is unreachable (the caller logs and goes on) and psycopg2 errors when a
        rebuild cannot read PostgreSQL."""
        try:
            if self.dirty:
                in_postgres = stored()
                if self._behind(in_postgres):
                    self.resync(snapshot(), in_postgres)
                    return
                self.dirty = False
            marks: list[str | int] = []
            for tp, next_offset in offsets.items():
                marks += (_field(tp), next_offset)
            ops = above_floors(ops, self.floors)
            changes = [op for op in ops if isinstance(op, HashChange)]
            if changes:
                ops = [op for op in ops if not isinstance(op, HashChange)]
            changing = change_commands(changes, self.stale_set)
            packed = [pack("EXISTS", self.marker), *changing, *commands(ops)]
            if marks:
                packed.append(pack("HSET", self.marker, *marks))
            boards = {op.key: op.top_n for op in ops if isinstance(op, ZScore)}
            for key in boards:  # after the trims: each written board's size and lowest score
                packed += (pack("ZCARD", key), pack("ZRANGE", key, 0, 0, "WITHSCORES"))
            replies = self._send(packed)
            self._learn_floors(boards, replies[len(replies) - 2 * len(boards) :])
            if not replies[0]:
                # Flushed or restarted between batches: these values landed in an empty db.
                self.dirty = True
                self.resync(snapshot(), stored())
                return
            stale = [_text(key) for reply in replies[1 : 1 + len(changing)] for key in reply]
            if stale:
                self._rewrite(stale, reread)
        except redis.RedisError:
            self.dirty = True
            raise

    def _rewrite(
        self, stale: list[str], reread: Callable[[list[str]], list[RedisOp]] | None
    ) -> None:
        """Rewrite hashes that missed a change (a failed write, a key evicted, a replica's
        older write landing late) whole, from PostgreSQL, then take them off the stale set. If
        this does not happen (a crash, PostgreSQL unreachable), the stale set makes the next
        check rebuild everything."""
        if reread is None:
            self.dirty = True
            return
        log.info("rewriting hashes that missed a change", extra={"hashes": len(stale)})
        rows = reread(stale)
        if rows:
            self._send(commands(rows))
        self.client.srem(self.stale_set, *stale)
        self.rewritten += len(stale)

    def _learn_floors(self, boards: dict[str, int], replies: list[Any]) -> None:
        if len(self.floors) + len(boards) > _FLOORS_LIMIT:
            self.floors.clear()
        for (key, top_n), size, lowest in zip(
            boards.items(), replies[0::2], replies[1::2], strict=True
        ):
            floor = floor_of(top_n, int(size), lowest)
            if floor is None:
                self.floors.pop(key, None)
            else:
                self.floors[key] = floor

    def _behind(self, in_postgres: dict[TopicPartition, int]) -> bool:
        """True when the marker is missing or records less progress than PostgreSQL has for
        some partition (Redis then lacks values of committed batches), or when hashes that
        missed a change still wait for their rewrite (its writer crashed or failed)."""
        have = self.client.hgetall(self.marker)
        synced = {_text(k): int(v) for k, v in have.items() if _text(k) != "synced_at"}
        return (
            not have
            or any(n >= 0 and synced.get(_field(tp), -1) < n for tp, n in in_postgres.items())
            or self.client.scard(self.stale_set) > 0
        )

    def verify(
        self,
        *,
        snapshot: Callable[[], Iterator[list[RedisOp]]],
        stored: Callable[[], dict[TopicPartition, int]],
        settle_seconds: float = 2.0,
    ) -> None:
        """At start, before this process commits anything: trust Redis when its marker holds
        PostgreSQL's progress, else rebuild. A replica of the same group may have committed a
        batch it has not yet written to Redis, so a marker that is behind is given
        `settle_seconds` to catch up before it counts as stale. (Checking only at the first
        write, after this process's own first commit, found Redis behind every time: a
        rebuild of every value at each restart or scale-up.)"""
        try:
            in_postgres = stored()
            deadline = time.monotonic() + settle_seconds
            while self._behind(in_postgres):
                if time.monotonic() >= deadline or not self.client.exists(self.marker):
                    self.resync(snapshot(), in_postgres)
                    return
                time.sleep(0.1)
            self.dirty = False
        except redis.RedisError:
            self.dirty = True
            raise

    def resync(self, chunks: Iterable[list[RedisOp]], offsets: dict[TopicPartition, int]) -> None:
        """Replace this mode's keys with `chunks`, read from PostgreSQL after `offsets` (so the
        values are at least as new as the offsets recorded in the marker)."""
        log.warning("rebuilding Redis from PostgreSQL", extra={"marker": self.marker})
        self.floors.clear()  # not needed for safety (see the module's note), only to start afresh
        self.client.delete(self.marker, self.stale_set)
        stale = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        for start in range(0, len(stale), 1000):
            self.client.unlink(*stale[start : start + 1000])
        count = 0
        for chunk in chunks:
            packed = commands(chunk)
            if packed:
                self._send(packed)
            count += len(chunk)
        marks: dict[str, str | int] = {"synced_at": int(time.time())}
        marks.update({_field(tp): n for tp, n in offsets.items() if n >= 0})
        self.client.hset(self.marker, mapping=marks)  # type: ignore[arg-type]  # redis-py's stubs want a wider dict type
        self.dirty = False
        self.resyncs += 1
        log.info("Redis rebuilt from PostgreSQL", extra={"values": count})
