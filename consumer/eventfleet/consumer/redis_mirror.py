"""Redis as a disposable mirror of PostgreSQL.

Values are absolute (from PostgreSQL), so writing them again is harmless. A marker key says "this
db holds a complete copy"; it is set after a full resync. If Redis restarts empty or is flushed,
the marker is gone and the next publish rebuilds everything from PostgreSQL. While Redis is
unreachable, PostgreSQL work continues and the mirror is marked dirty: the first publish after
Redis is back is a full resync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import redis
from eventfleet.consumer.modes.base import HashSet, RedisOp, ZScore

log = logging.getLogger(__name__)
MARKER_PREFIX: Final = "eventfleet:synced:"


class RedisMirror:
    def __init__(self, url: str, db: int, mode: str, prefix: str) -> None:
        # The db comes from the settings, not the URL's path (redis-py lets the URL win).
        parts = urlsplit(url)
        self.client = redis.Redis.from_url(
            urlunsplit(parts._replace(path=f"/{db}")),
            socket_timeout=5,
            socket_connect_timeout=3,
            health_check_interval=30,
        )
        self.marker = MARKER_PREFIX + mode
        self.prefix = prefix
        self.dirty = True  # verify the marker before trusting the db
        self.resyncs = 0

    def close(self) -> None:
        self.client.close()

    def publish(self, ops: list[RedisOp], snapshot: Callable[[], Iterator[list[RedisOp]]]) -> None:
        """Write a batch's values; rebuild everything when the marker is missing.
        Raises redis.RedisError when Redis is unreachable (the caller logs and goes on)."""
        try:
            if self.dirty:
                if not self.client.exists(self.marker):
                    self.resync(snapshot())
                    return
                self.dirty = False
            pipe = self.client.pipeline(transaction=False)
            pipe.exists(self.marker)
            _queue(pipe, ops)
            results = pipe.execute()
            if not results[0]:
                # Flushed or restarted between batches: these values landed in an empty db.
                self.resync(snapshot())
        except redis.RedisError:
            self.dirty = True
            raise

    def resync(self, chunks: Iterable[list[RedisOp]]) -> None:
        log.warning("rebuilding Redis from PostgreSQL", extra={"marker": self.marker})
        self.client.delete(self.marker)
        stale = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        for start in range(0, len(stale), 1000):
            self.client.unlink(*stale[start : start + 1000])
        count = 0
        for chunk in chunks:
            pipe = self.client.pipeline(transaction=False)
            _queue(pipe, chunk)
            pipe.execute()
            count += len(chunk)
        self.client.set(self.marker, "1")
        self.dirty = False
        self.resyncs += 1
        log.info("Redis rebuilt from PostgreSQL", extra={"values": count})


def _queue(pipe: redis.client.Pipeline, ops: list[RedisOp]) -> None:
    boards: dict[str, tuple[int, datetime | None]] = {}
    for op in ops:
        if isinstance(op, HashSet):
            pipe.hset(op.key, mapping=op.mapping)  # type: ignore[arg-type]  # redis-py's stubs want a wider dict type
        elif isinstance(op, ZScore):
            pipe.zadd(op.key, {op.member: op.score})
            boards[op.key] = (op.top_n, op.expire_at)
    for key, (top_n, expire_at) in boards.items():
        pipe.zremrangebyrank(key, 0, -(top_n + 1))
        if expire_at is not None:
            pipe.expireat(key, expire_at)
