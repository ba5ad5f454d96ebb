"""The loop's side of the Redis mirror (step 5 of the order in runtime.py): the check before the
first batch, each committed batch's values, and the PostgreSQL reads a rebuild needs.

The protocol itself is mirror.sync.RedisMirror; this feeds it the mode's values and reads, on a
PostgreSQL connection of its own (the next batch's transaction may be running on the Store's),
and keeps Redis from ever stopping the pipeline: a failure is counted and logged, and the mirror
rebuilds once it can.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Final

import psycopg2
import psycopg2.extensions
import redis

from eventfleet.consumer.mirror.ops import RedisOp
from eventfleet.consumer.mirror.sync import RedisMirror
from eventfleet.consumer.modes.base import Mode, RedisValues
from eventfleet.consumer.observability import Metrics
from eventfleet.consumer.pg_connection import LazyConnection
from eventfleet.consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)
TP = tuple[str, int]
IDLE_REPAIR_SECONDS: Final = 5.0  # between rebuild attempts of an idle consumer whose Redis refuses


class MirrorLink:
    def __init__(
        self,
        mirror: RedisMirror,
        settings: ConsumerSettings,
        sink: str,
        mode: Mode,
        metrics: Metrics,
    ) -> None:
        self.redis = mirror
        self.settings = settings
        self.sink = sink
        self.mode = mode
        self.metrics = metrics
        # Redis rebuilds read on a connection of their own: they may read while a batch commits.
        self._connection = LazyConnection(settings)
        self._next_idle_repair = 0.0

    def close(self) -> None:
        self.redis.close()
        self._close_connection()

    def verify(self) -> None:
        """Before the first batch: rebuild Redis only if it is really behind PostgreSQL."""
        mirror = self.redis
        self._safely(lambda: mirror.verify(snapshot=self._snapshot, stored=self._stored))

    def publish(self, values: list[RedisValues], offsets: dict[TP, int]) -> None:
        """A committed batch: the values its writes returned (one per written slice) and its
        partitions' next offsets."""
        mirror = self.redis
        if not (values or mirror.dirty):
            return
        floors = mirror.floors
        try:
            ops = [op for slice_values in values for op in slice_values(floors)]
        except Exception:
            # PostgreSQL has the batch; Redis is rebuilt from it instead of patched.
            self.metrics.internal_errors.labels("redis").inc()
            log.exception("building the batch's Redis values raised; Redis is rebuilt")
            mirror.dirty = True
            ops = []
        self._safely(
            lambda: mirror.publish(
                ops,
                offsets,
                snapshot=self._snapshot,
                stored=self._stored,
                reread=self._reread,
            )
        )

    def repair_when_idle(self) -> None:
        """While no batch is in flight: a mirror a failed write left untrusted (Redis was full,
        unreachable, or a bug of ours) is rebuilt from PostgreSQL now, not at the next event,
        which on a quiet topic may be hours away; tried at most every IDLE_REPAIR_SECONDS."""
        if not self.redis.dirty or time.monotonic() < self._next_idle_repair:
            return
        self._next_idle_repair = time.monotonic() + IDLE_REPAIR_SECONDS
        self.publish([], {})

    def _safely(self, write: Callable[[], None]) -> None:
        """Redis never stops the pipeline: a failure is counted and logged, and the mirror
        rebuilds once it can."""
        mirror = self.redis
        resyncs, rewritten = mirror.resyncs, mirror.rewritten
        try:
            write()
        except redis.RedisError as error:
            self.metrics.redis_errors.inc()
            log.warning("Redis write failed; will rebuild when back", extra={"error": str(error)})
        except psycopg2.Error as error:
            mirror.dirty = True
            self._close_connection()
            log.warning("Redis rebuild could not read PostgreSQL", extra={"error": str(error)})
        except Exception:
            # Redis never stops the pipeline, not even through a bug of ours: logged, counted,
            # and the mirror tries a rebuild at the next batch.
            mirror.dirty = True
            self.metrics.internal_errors.labels("redis").inc()
            log.exception("the Redis mirror raised; it rebuilds at the next batch")
        if mirror.resyncs != resyncs:
            self.metrics.redis_resyncs.inc()
        if mirror.rewritten != rewritten:
            self.metrics.redis_rewrites.inc(mirror.rewritten - rewritten)

    # --------------------------------------------------------- PostgreSQL reads of a rebuild

    def _db(self) -> psycopg2.extensions.connection:
        return self._connection.get()

    def _close_connection(self) -> None:
        self._connection.close()

    def _snapshot(self) -> Iterator[list[RedisOp]]:
        return self.mode.snapshot(self._db(), datetime.now(UTC))

    def _reread(self, keys: list[str]) -> list[RedisOp]:
        return self.mode.reread(self._db(), keys)

    def _stored(self) -> dict[TP, int]:
        connection = self._db()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT topic, kafka_partition, next_offset FROM sink_offsets WHERE sink = %s",
                (self.sink,),
            )
            found = {(t, p): o for t, p, o in cursor.fetchall()}
        connection.commit()
        return found
