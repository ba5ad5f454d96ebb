"""The sync protocol that keeps Redis a disposable mirror of PostgreSQL (RedisMirror).

Values are absolute (from PostgreSQL), so writing them again is harmless. A marker hash
`eventfleet:synced:{mode}:sink` says "this db holds a complete copy, up to these offsets": it is
created by a full rebuild and each batch's write moves its partitions' offsets in the same
pipeline, after the values (only while the marker exists). If Redis restarts empty or is
flushed, the marker is gone and the next publish rebuilds everything from PostgreSQL. When the
mirror cannot be sure of Redis (at start, after a Redis error, while PostgreSQL work went on
without Redis, or after a crash between a commit and its Redis write), it compares the marker's
offsets with PostgreSQL's and rebuilds if Redis is behind. A rebuild deletes nothing, runs in one
replica at a time and heartbeats (`rebuild`).

A batch goes out as one pipelined write of the commands `resp` packs, without the board members
below their board's floor (`floors`).

A batch's stats hashes carry only the values their upsert changed (HashChange: 4 to 9 of 18
fields, half of Redis's work per hash). Such a change is complete only on top of the version just
before it, so its script (resp) applies it there alone. A hash further behind (a failed write, an
evicted key, an older write landing late) is put into a stale set in the same step and rewritten
whole from PostgreSQL right after; the stale set outlives a crash, and while it is not empty the
mirror is not trusted (the next check rebuilds everything). Boards do the same with their
versions in a registry (resp.BoardBook): an evicted board, or one built for a smaller top N, is
rebuilt alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import redis

from eventfleet.consumer.mirror.floors import above_floors, learn_floors
from eventfleet.consumer.mirror.ops import HashChange, HashSet, RedisOp, ZScore
from eventfleet.consumer.mirror.rebuild import RebuildLock, mark_command, merge_mark_command
from eventfleet.consumer.mirror.resp import (
    BoardBook,
    board_commands,
    change_commands,
    commands,
    hash_commands,
    pack,
)

log = logging.getLogger(__name__)
MARKER_PREFIX: Final = "eventfleet:synced:"
STALE_PREFIX: Final = "eventfleet:stale:"  # keys that missed a change, until rewritten
REGISTRY_PREFIX: Final = "eventfleet:boards:"  # board key -> "N:expiry" (resp.BoardBook)
# Registry entries of expired boards are dropped at most this often.
PRUNE_SECONDS: Final = 3600.0
TopicPartition = tuple[str, int]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _field(tp: TopicPartition) -> str:
    return f"{tp[0]}/{tp[1]}"


def _no_beat() -> None:
    return None


class RedisMirror:
    def __init__(
        self,
        url: str,
        db: int,
        name: str,
        *,
        boards: bool = False,
        heartbeat: Callable[[], None] = _no_beat,
    ) -> None:
        """`name`: the mode and sink; `boards`: the mode writes sorted sets (whose registry
        then belongs to a complete copy); `heartbeat`: called while a rebuild runs."""
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
        self.book = BoardBook(REGISTRY_PREFIX + name, self.stale_set)
        self.boards = boards
        self.heartbeat = heartbeat
        self.lock = RebuildLock(self.client, name)
        self.dirty = True  # compare the marker with PostgreSQL before trusting the db
        self.resyncs = 0
        self.rewritten = 0  # keys rewritten whole because they had missed a change
        self.floors: dict[str, int] = {}  # board key -> lowest score kept (full boards only)
        self._next_prune = 0.0

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
        everything from PostgreSQL when Redis may be missing values, and rewrite the keys that
        missed a change with what `reread` reads from PostgreSQL. While another replica
        rebuilds, write the values only (the marker is the rebuild's). Raises
        redis.RedisError when Redis is unreachable (the caller logs and goes on) and psycopg2
        errors when a rebuild cannot read PostgreSQL."""
        try:
            mark = True
            if self.dirty:
                if self.lock.held_elsewhere():
                    mark = False  # not trusted, not ours to rebuild: values only
                else:
                    in_postgres = stored()
                    if self._behind(in_postgres):
                        if self.resync(snapshot(), in_postgres):
                            return  # read after this batch committed: it holds its values
                        mark = False
                    else:
                        self.dirty = False
            self._write(ops, offsets if mark else {}, snapshot, stored, reread)
            if time.monotonic() >= self._next_prune:
                self._prune_registry()
        except redis.RedisError:
            self.dirty = True
            raise

    def _write(
        self,
        ops: list[RedisOp],
        offsets: dict[TopicPartition, int],
        snapshot: Callable[[], Iterator[list[RedisOp]]],
        stored: Callable[[], dict[TopicPartition, int]],
        reread: Callable[[list[str]], list[RedisOp]] | None,
    ) -> None:
        """One batch's pipeline: EXISTS marker, changes, hashes, boards, the marker's move,
        then the rewrites the changes and boards asked for."""
        marks: list[str | int] = []
        for tp, next_offset in offsets.items():
            marks += (_field(tp), next_offset)
        ops = above_floors(ops, self.floors)
        changes = [op for op in ops if isinstance(op, HashChange)]
        changing = change_commands(changes, self.stale_set)
        hashing = hash_commands([op for op in ops if isinstance(op, HashSet)])
        scores = [op for op in ops if isinstance(op, ZScore)]
        boarding, boards = board_commands(scores, self.book)
        packed = [pack("EXISTS", self.marker), *changing, *hashing, *boarding]
        if marks:
            packed.append(mark_command(self.marker, marks))
        replies = self._send(packed)
        board_replies = replies[1 + len(changing) + len(hashing) :][: len(boarding)]
        learn_floors(self.floors, boards, [r for reply in board_replies for r in reply[1:]])
        if not replies[0]:
            # Flushed or restarted between batches: these values landed in an empty db.
            self.dirty = True
            self.resync(snapshot(), stored())
            return
        stale = [_text(key) for reply in replies[1 : 1 + len(changing)] for key in reply]
        stale += [key for key, reply in zip(boards, board_replies, strict=True) if reply[0]]
        if stale:
            self._rewrite(stale, reread)

    def _rewrite(
        self, stale: list[str], reread: Callable[[list[str]], list[RedisOp]] | None
    ) -> None:
        """Rewrite keys that missed a change (a hash: a failed write, a key evicted, a
        replica's older write landing late; a board: evicted, or built for a smaller top N)
        whole, from PostgreSQL, then take them off the stale set. If this does not happen (a
        crash, PostgreSQL unreachable), the stale set makes the next check rebuild everything."""
        if reread is None:
            self.dirty = True
            return
        log.info("rewriting keys that missed a change", extra={"keys": len(stale)})
        rows = reread(stale)
        if rows:
            self._send(commands(rows, self.book, complete=True))
        self.client.srem(self.stale_set, *stale)
        self.rewritten += len(stale)

    def _behind(self, in_postgres: dict[TopicPartition, int]) -> bool:
        """True when the marker is missing or records less progress than PostgreSQL has for
        some partition (Redis then lacks values of committed batches), when keys that missed a
        change still wait for their rewrite (its writer crashed or failed), or when the boards'
        registry is gone (their versions with it)."""
        have = self.client.hgetall(self.marker)
        synced = {_text(k): int(v) for k, v in have.items() if _text(k) != "synced_at"}
        return (
            not have
            or any(n >= 0 and synced.get(_field(tp), -1) < n for tp, n in in_postgres.items())
            or self.client.scard(self.stale_set) > 0
            or (self.boards and not self.client.exists(self.book.registry))
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
        rebuild of every value at each restart or scale-up.) While another replica rebuilds,
        this one stays untrusting and checks again at its batches."""
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

    def resync(self, chunks: Iterable[list[RedisOp]], offsets: dict[TopicPartition, int]) -> bool:
        """Rebuild this mode's keys from `chunks`, read from PostgreSQL after `offsets` (so the
        values are at least as new as the offsets the marker gets), beside what readers see and
        deleting nothing (see rebuild). False: another replica is rebuilding (nothing done)."""
        if not self.lock.take():
            log.info(
                "another replica is rebuilding Redis; not rebuilding here",
                extra={"marker": self.marker},
            )
            self.dirty = True
            return False
        try:
            log.warning("rebuilding Redis from PostgreSQL", extra={"marker": self.marker})
            self.floors.clear()  # not needed for safety (see floors), only to start afresh
            # Whatever waits for a rewrite now is rewritten by this rebuild (read after).
            waiting = list(self.client.smembers(self.stale_set))
            if self.boards:
                self.client.hset(self.book.registry, "*", "registry")
            count = 0
            for chunk in chunks:
                packed = commands(chunk, self.book, complete=True)
                if packed:
                    self._send(packed)
                count += len(chunk)
                self.lock.extend()
                self.heartbeat()
            marks = {_field(tp): n for tp, n in offsets.items() if n >= 0}
            self._send([merge_mark_command(self.marker, int(time.time()), marks)])
            if waiting:
                self.client.srem(self.stale_set, *waiting)
        finally:
            self.lock.release()
        self.dirty = False
        self.resyncs += 1
        log.info("Redis rebuilt from PostgreSQL", extra={"values": count})
        self._prune_registry()
        return True

    def _prune_registry(self) -> None:
        """Drop the registry entries of boards whose expiry has passed (their keys are gone,
        and would otherwise count as lost if written again)."""
        self._next_prune = time.monotonic() + PRUNE_SECONDS
        if not self.boards:
            return
        now = time.time()
        expired = []
        for field, value in self.client.hscan_iter(self.book.registry, count=1000):
            _, _, expiry = _text(value).partition(":")
            if expiry.isdigit() and 0 < int(expiry) <= now:
                expired.append(field)
        for start in range(0, len(expired), 1000):
            self.client.hdel(self.book.registry, *expired[start : start + 1000])
