"""The sync protocol that keeps Redis a disposable mirror of PostgreSQL (RedisMirror).

Values are absolute (from PostgreSQL), so writing them again is harmless. A marker hash
`eventfleet:synced:{mode}:{group}` says "this db holds a complete copy, up to these offsets": it
is created by a full resync and each batch's write updates its partitions' offsets in the same
pipeline, after the values. If Redis restarts empty or is flushed, the marker is gone and the next
publish rebuilds everything from PostgreSQL. When the mirror cannot be sure of Redis (at start,
after a Redis error, while PostgreSQL work went on without Redis, or after a crash between a
commit and its Redis write), it compares the marker's offsets with PostgreSQL's and rebuilds if
Redis is behind.

A batch goes out as one pipelined write of the commands `resp` packs, without the board members
below their board's floor (`floors`).

A batch's stats hashes carry only the values their upsert changed (HashChange: 4 to 9 of 18
fields, half of Redis's work per hash). Such a change is complete only on top of the version just
before it, so its script (resp) applies it there alone. A hash further behind (a failed write, an
evicted key, an older write landing late) is put into a stale set in the same step and rewritten
whole from PostgreSQL right after; the stale set outlives a crash, and while it is not empty the
mirror is not trusted (the next check rebuilds everything).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import redis

from eventfleet.consumer.mirror.floors import above_floors, learn_floors
from eventfleet.consumer.mirror.ops import HashChange, RedisOp, ZScore
from eventfleet.consumer.mirror.resp import change_commands, commands, pack

log = logging.getLogger(__name__)
MARKER_PREFIX: Final = "eventfleet:synced:"
STALE_PREFIX: Final = "eventfleet:stale:"  # a set of hashes that missed a change, until rewritten
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
            learn_floors(self.floors, boards, replies[len(replies) - 2 * len(boards) :])
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
        self.floors.clear()  # not needed for safety (see floors), only to start afresh
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
