"""The consumer loop: Kafka in, one PostgreSQL transaction per batch, then Kafka and Redis.

The Consumer here runs the loop and its lifecycle (migrations and the sink's claim before the
first batch, the probes, closing). It holds one part per system (parts.py says what it calls on
each): a KafkaSource (kafka_source.py), a Store (store.py), a MirrorLink to Redis
(mirror_link.py) and, with a DLQ topic, a DlqProducer (dlq_producer.py). What the loop decides,
the pure functions of batch.py decide.

Per batch, in this order:

1. Poll (KafkaSource.poll): wait for a record, then gather up to batch_size; the batch closes
   batch_timeout_ms after its oldest record was produced (a backlog closes it at once). Waiting
   for company keeps batches (and so transactions, commits and Redis writes) few at low rates:
   at 1,000 events/s a transaction per handful of events cost more CPU than the events
   themselves.
2. Parse (Consumer._parse, pure): valid events and rejections with their reasons, a second
   record of an event_id in the batch set aside (where (b) applies); the mode stages its rows.
3. One PostgreSQL transaction (Store.transact, after KafkaSource.topic_ids_of named the ids of
   the batch's topics):
   a. lock the sink's offset rows of the batch's partitions (SELECT ... FOR UPDATE, creating
      missing rows first; the sink is the mode's tables in this database, whatever the group is
      called) and keep only records that continue each partition from its stored offset:
      anything below was already processed (a replay, or by a previous owner of the
      partition), a gap means we are positioned wrong (seek back). An offset stored with
      another topic id counts in a deleted incarnation of the topic: the partition starts again
      from 0. Two consumers that both think they own a partition are serialised by the row lock
      and cannot both count a record. The lock is waited for at most lock_timeout: a holder that
      does not finish (an owner cut off mid-transaction) makes the batch back off and retry,
      beating and naming the holder on the probes (pg_waits.LockBusyError);
   b. once per event_id (dedup.py; stats and leaderboard, the logger's table is keyed by the
      id): an event whose event_id the sink counted within the dedup window (a client's retry)
      is not counted again. Then the mode writes its rows; a DataError/IntegrityError, or any
      exception of the consumer's own code, is isolated by bisection under savepoints and the
      guilty record goes to the DLQ (database_error with the database's message, or
      internal_error with the exception's); the partition moves on;
   c. DLQ rows for rejected and guilty records;
   d. the new offsets with the topic's id, updated only from the offset read in (a)
      (compare-and-set: FencedError if one moved);
   e. commit. Any other database error: roll back. Then, as when Kafka did not name a topic's
      id before the transaction: back off (KafkaSource.wait: partitions paused; readiness
      false) and retry the same batch; nothing has been committed anywhere.
4. Commit the same offsets to Kafka (KafkaSource.commit: asynchronously and at most every
   KAFKA_COMMIT_INTERVAL_SECONDS: PostgreSQL is the source of truth; Kafka's copy makes lag
   visible), send DLQ records to the DLQ topic if one is configured (DlqProducer). A seek
   makes the next transaction read its topic's id again: a topic recreated under a running
   consumer keeps its assignment, and only its id tells its new records from the old.
5. Redis (MirrorLink.publish): write the absolute values PostgreSQL returned; if Redis lost its
   marker, rebuild it from PostgreSQL. A Redis failure never blocks step 3.

Steps 1-2 of the next batch overlap step 3 of the previous one (the transaction runs in a worker
thread). Once it has committed, the next batch's transaction starts and steps 4-5 of the committed
one run beside it (Consumer._after_commit): at most one transaction is ever in flight, Redis and
Kafka get each batch's results in commit order, and Redis rebuilds read PostgreSQL on a connection
of their own. A batch fetched before a seek that the committed batch asked for loses that
partition's records (batch.without_partitions: their positions are stale; they are fetched
again from the new position).

On assignment the consumer seeks to the offsets stored in PostgreSQL (Store.stored_offsets).
Rebalance callbacks run inside poll (KafkaSource's); before partitions are given up (or new ones
read their offsets) the batch in flight is finished (Consumer._finish_in_flight). SIGTERM sets
the stop flag: the current batch finishes and commits, the last offsets go to Kafka and the
consumer closes (leaving the group) before the process exits 0.
tests/unit/consumer/test_loop_order.py checks this order with fakes of the parts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from eventfleet.consumer import modes, startup
from eventfleet.consumer.batch import (
    Batch,
    Good,
    Record,
    first_of_each_event,
    parse_records,
    without_partitions,
)
from eventfleet.consumer.dlq_producer import DlqProducer
from eventfleet.consumer.kafka_source import KafkaSource, TopicIdUnavailableError
from eventfleet.consumer.mirror.sync import RedisMirror
from eventfleet.consumer.mirror_link import MirrorLink
from eventfleet.consumer.observability import Health, HttpServer, Metrics
from eventfleet.consumer.parts import KafkaPart, MirrorPart, StorePart
from eventfleet.consumer.pg_waits import LockBusyError
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.consumer.store import TRANSACTION_ERRORS, Outcome, Store
from eventfleet.contract.events import ParseLimits
from eventfleet.contract.names import BOARD_KEY_PREFIX

log = logging.getLogger(__name__)
TP = tuple[str, int]
LATENCY_SAMPLE: Final = 100
# A batch whose transaction raised one of these is retried (nothing was committed).
RETRIED: Final = (*TRANSACTION_ERRORS, TopicIdUnavailableError)


class Consumer:
    def __init__(
        self,
        settings: ConsumerSettings,
        *,
        stop: threading.Event | None = None,
        kafka_config: dict[str, Any] | None = None,
        kafka_auth: Mapping[str, str] | None = None,
        source: KafkaPart | None = None,
        store: StorePart | None = None,
        mirror: MirrorPart | None = None,
    ) -> None:
        """`source`, `store` and `mirror` replace the parts the Consumer makes itself (tests
        give it fakes); `kafka_config` adds to or overrides the Kafka consumer's settings;
        `kafka_auth` (security.protocol, sasl.*, ssl.*) goes to every Kafka client here."""
        self.kafka_auth: dict[str, str] = dict(kafka_auth or {})
        self.settings = settings
        self.stop = stop or threading.Event()
        self.metrics = Metrics()
        self.health = Health(self.metrics.ready)
        self.mode = modes.build(settings)
        # The sink: this mode's tables in this database, whose progress is kept under its name
        # whatever the Kafka group is called (sql/shared/0002).
        self.sink: str = settings.mode
        self.store: StorePart = store or Store(settings, self.sink, self.mode, self.metrics)
        self.limits = ParseLimits(
            settings.max_event_bytes, timedelta(seconds=settings.max_future_skew_seconds)
        )
        self.source: KafkaPart = source or KafkaSource(
            settings,
            self.metrics,
            self.health,
            self.stop,
            kafka_config=kafka_config,
            kafka_auth=self.kafka_auth,
        )
        self.http: HttpServer | None = None
        self.redis: RedisMirror | None = None
        self.dlq: DlqProducer | None = None
        self.mirror: MirrorPart | None = mirror  # made in run() if the mode uses Redis
        self._workers: ThreadPoolExecutor | None = None
        # The batch whose transaction is running in the worker thread, if any.
        self._pending: tuple[Batch, Future[Outcome | BaseException]] | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Consume until `stop` is set; returns the process exit code."""
        settings = self.settings
        with ExitStack() as stack:
            if settings.http_port:
                self.http = HttpServer(
                    settings.http_host, settings.http_port, self.metrics, self.health
                ).start()
                stack.callback(self.http.stop)
            stack.callback(self.store.close)
            if not startup.migrate_schema(
                self.store, settings, self.health, self.metrics, self.stop
            ):
                return 0 if self.stop.is_set() else 1
            if not startup.claim_sink(self.store, settings, self.sink, self.health, self.stop):
                return 0
            if self.mirror is None and self.mode.redis_prefix is not None and settings.redis_url:
                self.redis = RedisMirror(
                    settings.redis_url,
                    settings.redis_db,
                    f"{settings.mode}:sink",
                    boards=self.mode.redis_prefix == BOARD_KEY_PREFIX,
                    heartbeat=self.health.beat,  # a rebuild of many keys is progress
                )
                self.mirror = MirrorLink(self.redis, settings, self.sink, self.mode, self.metrics)
            if self.mirror is not None:
                stack.callback(self.mirror.close)
                self.mirror.verify()
            if settings.dlq_topic:
                self.dlq = DlqProducer(
                    settings.kafka_bootstrap,
                    settings.dlq_topic,
                    settings.group,
                    self.kafka_auth,
                    failures=self.metrics.dlq_produce_failures,
                )
                stack.callback(self.dlq.flush)
            stack.callback(self.source.close)
            self.source.subscribe(finish=self._finish_in_flight, stored=self.store.stored_offsets)
            self.health.ready = True
            log.info(
                "consumer started",
                extra={"mode": settings.mode, "topic": settings.topic, "group": settings.group},
            )
            workers = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="database"))
            self._workers = workers
            while not self.stop.is_set():
                self.health.beat()
                self.source.commit()
                if self.store.maintenance_due():
                    self._drain()
                    self.store.maintain()
                # Poll and parse the next batch while the previous one commits (step 3 runs
                # in a worker thread, overlapping this thread's parsing with PostgreSQL's work).
                records = self.source.poll(wait=self._pending is None)
                batch = self._parse(records) if records else None
                done = self._finish()
                if batch is not None and done is not None and done[0].admission.seeks:
                    # Fetched before those seeks: stale positions for the partitions that move.
                    batch = without_partitions(batch, set(done[0].admission.seeks))
                if batch is not None and batch.records:
                    self._pending = (batch, workers.submit(self._attempt, batch))
                if done is not None:
                    # Kafka commit, DLQ topic and Redis of the committed batch run while the
                    # next batch's transaction does (they never use its connection).
                    self._after_commit(*done)
                elif self._pending is None and self.mirror is not None:
                    self.mirror.repair_when_idle()  # nothing in flight: a rebuild reads it all
            self._drain()
            log.info("stopping: batch finished, committing and leaving the group")
        return 0

    # --------------------------------------------------------------------------------- batch

    def _parse(self, records: list[Record], topic_ids: dict[str, str] | None = None) -> Batch:
        """Parse and stage (pure work, in the polling thread), with the topic ids known now; the
        transaction parses again if they turn out to be others (see _transaction)."""
        now = datetime.now(UTC)
        if topic_ids is None:
            known = self.source.topic_ids
            topic_ids = {r.topic: known[r.topic] for r in records if r.topic in known}
        good, bad = parse_records(records, now=now, limits=self.limits, topic_ids=topic_ids)
        repeated: list[Good] = []
        if self.mode.counted_events_table is not None:
            good, repeated = first_of_each_event(good, self.mode.counted_types)
        staged = None
        if good:
            try:
                staged = self.mode.stage(good, now)
            except Exception:
                # The write stages again, one bisected slice at a time, and the record that
                # raises goes to the DLQ as internal_error.
                self.metrics.internal_errors.labels("stage").inc()
                log.exception("staging a batch raised; its records are isolated in the write")
        return Batch(records, good, bad, now, time.perf_counter(), staged, repeated, topic_ids)

    def _attempt(self, batch: Batch) -> Outcome | BaseException:
        """In the worker thread: one try at the batch's transaction."""
        try:
            return self._transaction(batch)
        except RETRIED as error:
            return error

    def _finish_in_flight(self) -> None:
        """Before partitions change hands (KafkaSource's rebalance callbacks)."""
        self._drain(retry=False)

    def _drain(self, *, retry: bool = True) -> None:
        """Finish the batch in flight: its after-commit steps, or retries if it failed."""
        done = self._finish(retry=retry)
        if done is not None:
            self._after_commit(*done)

    def _finish(self, *, retry: bool = True) -> tuple[Outcome, Batch] | None:
        """Wait for the batch in flight to commit (retrying it if it failed); the caller runs
        its after-commit steps. None: nothing was in flight or nothing was committed."""
        if self._pending is None:
            return None
        batch, future = self._pending
        self._pending = None
        result = future.result()
        if isinstance(result, Outcome):
            self.health.ready = True
            return result, batch
        self._failed(result)
        if not retry:
            return None
        outcome = self._handle(batch)
        return None if outcome is None else (outcome, batch)

    def _failed(self, error: BaseException) -> None:
        self.metrics.db_errors.inc()
        self.health.ready = False
        self.store.close()
        if isinstance(error, LockBusyError):
            # Bounded by lock_timeout and retried: the loop beats while it waits, and says
            # what for (the holder may be an owner cut off mid-transaction, until the server
            # ends its session).
            self.metrics.lock_waits.labels(error.lock).inc()
            self.health.wait_for(error.describe())
            log.warning(
                "a lock wait timed out; retrying the batch", extra={"waiting_for": str(error)}
            )
            return
        log.warning("batch not committed", extra={"error": str(error).strip()})

    def _handle(self, batch: Batch) -> Outcome | None:
        """Retry a failed batch until it commits (None: the consumer stops first), backing off."""
        backoff = 0.2
        while True:
            if self.stop.is_set():
                return None  # nothing was committed: whoever consumes next redoes this batch
            self.source.wait(backoff)
            backoff = min(backoff * 2, self.settings.max_backoff_seconds)
            assigned = self.source.assigned
            owned = [r for r in batch.records if r.tp in assigned]
            if len(owned) != len(batch.records):
                batch.records = owned
                batch.good = [g for g in batch.good if g.record.tp in assigned]
                batch.bad = [b for b in batch.bad if b.record.tp in assigned]
                batch.repeated = [g for g in batch.repeated if g.record.tp in assigned]
                batch.staged = None
            if not batch.records:
                return None
            try:
                outcome = self._transaction(batch)
                break
            except RETRIED as error:
                self._failed(error)
        self.health.ready = True
        return outcome

    def _transaction(self, batch: Batch) -> Outcome:
        topic_ids = self.source.topic_ids_of({r.topic for r in batch.records})
        if batch.topic_ids != topic_ids:
            # Parsed before the ids were known (or a new incarnation since): derived event ids
            # must name the incarnation, so the batch is parsed again.
            fresh = self._parse(batch.records, topic_ids)
            batch.good, batch.bad, batch.repeated = fresh.good, fresh.bad, fresh.repeated
            batch.staged, batch.topic_ids = fresh.staged, topic_ids
        return self.store.transact(batch, topic_ids, self.source.accepted_gaps)

    def _after_commit(self, outcome: Outcome, batch: Batch) -> None:
        admission = outcome.admission
        committed_at = outcome.committed_at
        metrics = self.metrics
        if admission.next_offsets:
            self.source.commit(admission.next_offsets)
        for (topic, partition), offset in admission.seeks.items():
            self.source.seek(topic, partition, offset)
        if admission.seeks:
            self.source.recheck_topic_ids({topic for topic, _ in admission.seeks})
        if self.dlq is not None and outcome.dlq:
            self.dlq.produce(outcome.dlq)
        if self.mirror is not None:
            self.mirror.publish(outcome.redis_values, admission.next_offsets)
        if outcome.duplicates:
            metrics.duplicates.inc(outcome.duplicates)
            log.debug(
                "events already counted were not counted again",
                extra={"duplicates": outcome.duplicates},
            )
        for (topic, partition), topic_id in sorted(outcome.recreated.items()):
            metrics.topic_recreated.inc()
            log.warning(
                "topic deleted and created again: its new incarnation is processed from offset 0",
                extra={"partition": f"{topic}/{partition}", "topic_id": topic_id},
            )

        metrics.processed.inc(len(outcome.written))
        metrics.replayed.inc(admission.already_done)
        for bad in outcome.dlq:
            metrics.dlq.labels(bad.reason).inc()
        metrics.batch_size.observe(len(batch.records))
        metrics.batch_duration.observe(time.perf_counter() - batch.started)
        metrics.last_commit.set(committed_at)
        observe = metrics.latency.observe
        written = outcome.written
        # A sample of at most LATENCY_SAMPLE events per batch, evenly spread: the distribution
        # without paying an observation per event.
        step = max(len(written) // LATENCY_SAMPLE, 1)
        for good in written[::step]:
            observe(max(committed_at - good.event.timestamp.timestamp(), 0.0))
        self.source.update_lag(admission.next_offsets)
