"""The consumer loop: Kafka in, one PostgreSQL transaction per batch, then Kafka and Redis.

Per batch, in this order:

1. Poll: wait for a record, then gather up to batch_size; the batch closes batch_timeout_ms
   after its oldest record was produced (a backlog closes it at once). Waiting for company
   keeps batches (and so transactions, commits and Redis writes) few at low rates: at 1,000
   events/s a transaction per handful of events cost more CPU than the events themselves.
2. Parse (pure): valid events and rejections with their reasons.
3. One PostgreSQL transaction:
   a. lock the group's offset rows of the batch's partitions (SELECT ... FOR UPDATE, creating
      missing rows first) and keep only records that continue each partition from its stored
      offset: anything below was already processed (a replay, or by a previous owner of the
      partition), a gap means we are positioned wrong (seek back). Two consumers that both
      think they own a partition are serialised by the row lock and cannot both count a record;
   b. the mode writes its rows; a DataError/IntegrityError is isolated by bisection under
      savepoints and the guilty record goes to the DLQ with the database's message;
   c. DLQ rows for rejected and guilty records;
   d. the new offsets, updated only from the offset read in (a) (compare-and-set);
   e. commit. Any other database error: roll back, back off (partitions paused, readiness
      false), retry the same batch; nothing has been committed anywhere.
4. Commit the same offsets to Kafka (asynchronously and at most every
   KAFKA_COMMIT_INTERVAL_SECONDS: PostgreSQL is the source of truth; Kafka's copy makes lag
   visible), send DLQ records to the DLQ topic if one is configured.
5. Redis: write the absolute values PostgreSQL returned; if Redis lost its marker, rebuild it
   from PostgreSQL. A Redis failure never blocks step 3.

Steps 1-2 of the next batch overlap step 3 of the previous one (the transaction runs in a worker
thread). Once it has committed, the next batch's transaction starts and steps 4-5 of the committed
one run beside it: at most one transaction is ever in flight, Redis and Kafka get each batch's
results in commit order, and Redis rebuilds read PostgreSQL on a connection of their own. A batch
fetched before a seek that the committed batch asked for loses that partition's records (their
positions are stale; they are fetched again from the new position).

On assignment the consumer seeks to the offsets stored in PostgreSQL. Rebalance callbacks run
inside poll; before partitions are given up (or new ones read their offsets) the batch in flight
is finished. SIGTERM sets the stop flag: the current batch finishes and commits, the last
offsets go to Kafka and the consumer closes (leaving the group) before the process exits 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import confluent_kafka
import confluent_kafka.admin
import psycopg2
import psycopg2.extensions
import redis
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from eventfleet.consumer import migrate, modes
from eventfleet.consumer.batch import (
    NO_OFFSET,
    Good,
    Record,
    fill_wait_seconds,
    first_of_each_event,
    parse_records,
    restart_recreated,
)
from eventfleet.consumer.dlq_producer import DlqProducer
from eventfleet.consumer.mirror.ops import RedisOp
from eventfleet.consumer.mirror.sync import RedisMirror
from eventfleet.consumer.observability import Health, HttpServer, Metrics
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.consumer.store import Batch, FencedError, Outcome, Store, connect
from eventfleet.contract.events import ParseLimits

log = logging.getLogger(__name__)
TP = tuple[str, int]
FETCH_MIN_BYTES: Final = 256 * 1024
# How long an idle loop blocks in poll: a record ends the wait at once, so this only paces the
# loop's own chores (heartbeat, maintenance, the stop flag). Tying it to batchTimeoutMs woke an
# idle consumer 50 times a second at 20 ms.
IDLE_POLL_SECONDS: Final = 0.5
# Kafka's copy of the offsets only makes lag visible (PostgreSQL's is the one that counts), so it
# is sent at most this often instead of after every batch: each commit is a write to
# __consumer_offsets in the broker's group coordinator, and at 20 ms batches three consumers sent
# 150 a second (about a sixth of the broker's CPU under load). Lag read from Kafka runs at most
# this much behind; an idle consumer sends what is left within IDLE_POLL_SECONDS.
KAFKA_COMMIT_INTERVAL_SECONDS: Final = 0.25
LATENCY_SAMPLE: Final = 100
# How long the Kafka admin may take to name a topic's id, and how long a sink owned by another
# EventConsumer is waited for before looking again.
TOPIC_ID_TIMEOUT_SECONDS: Final = 10.0
SINK_RECHECK_SECONDS: Final = 10.0


class TopicIdUnavailableError(Exception):
    """Kafka did not name a topic's id: the batch waits (retried like a database error), since
    writing without it could not tell a recreated topic from the old one."""


class Consumer:
    def __init__(
        self,
        settings: ConsumerSettings,
        *,
        stop: threading.Event | None = None,
        kafka_config: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.metrics = Metrics()
        self.health = Health()
        self.mode = modes.build(settings)
        # The sink: this mode's tables in this database, whose progress is kept under its name
        # whatever the Kafka group is called (sql/shared/0002).
        self.sink: str = settings.mode
        self.store = Store(settings, self.sink, self.mode, self.metrics)
        self.limits = ParseLimits(
            settings.max_event_bytes, timedelta(seconds=settings.max_future_skew_seconds)
        )
        self.kafka_config: dict[str, Any] = {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": settings.group,
            "client.id": f"eventfleet-{settings.mode}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 3_000,
            "max.poll.interval.ms": 300_000,
            # Prefetch enough to fill batches back to back, not librdkafka's default 100,000
            # messages per partition (which alone would take most of the memory budget).
            "queued.min.messages": 20_000,
            "queued.max.messages.kbytes": 16_384,
            # Once that queue is full, librdkafka postpones the partition's next fetch by this
            # much (default 1 s). Draining a backlog at 30,000+ events/s, the queue ran dry
            # before the second was over: every second, 200 ms of empty polls (a fifth of the
            # logger's throughput). 20 ms re-checks the queue soon enough to keep it filled.
            "fetch.queue.backoff.ms": 20,
            # The broker answers a fetch once it has FETCH_MIN_BYTES or the batch's time is up,
            # not at every produced record: at 1,000 events/s that is tens of fetches a second
            # instead of hundreds (CPU in Kafka and here). The added wait is the batch's own
            # timeout, which the batch would spend waiting for company anyway (step 1).
            "fetch.min.bytes": FETCH_MIN_BYTES,
            "fetch.wait.max.ms": min(settings.batch_timeout_ms, 500),
            # librdkafka's own log lines go through logging too (JSON like the rest).
            "logger": logging.getLogger("eventfleet.consumer.kafka"),
            **(kafka_config or {}),
        }
        self.http: HttpServer | None = None
        self.redis: RedisMirror | None = None
        self.dlq: DlqProducer | None = None
        self._kafka: confluent_kafka.Consumer | None = None
        self._mirror_connection: psycopg2.extensions.connection | None = None
        self._assigned: set[TP] = set()
        self._topic_ids: dict[str, str] = {}  # Kafka's id of each topic, read on assignment
        self._admin: confluent_kafka.admin.AdminClient | None = None
        self._accepted_gaps: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}  # next offsets in PostgreSQL, per assigned partition
        self._sent_to_kafka: dict[TP, int] = {}  # what Kafka was last sent of those
        self._next_kafka_commit = 0.0
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
            stack.callback(self._close_mirror_connection)
            if not self._migrate():
                return 0 if self.stop.is_set() else 1
            if not self._claim_sink():
                return 0
            if self.mode.redis_prefix is not None and settings.redis_url:
                self.redis = RedisMirror(
                    settings.redis_url,
                    settings.redis_db,
                    f"{settings.mode}:sink",
                    self.mode.redis_prefix,
                )
                stack.callback(self.redis.close)
                self._verify_redis()
            if settings.dlq_topic:
                self.dlq = DlqProducer(settings.kafka_bootstrap, settings.dlq_topic, settings.group)
                stack.callback(self.dlq.flush)
            self._kafka = confluent_kafka.Consumer(self.kafka_config)
            stack.callback(self._close_kafka)
            self._kafka.subscribe(
                [settings.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            self._set_ready(ready=True)
            log.info(
                "consumer started",
                extra={"mode": settings.mode, "topic": settings.topic, "group": settings.group},
            )
            workers = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="database"))
            self._workers = workers
            while not self.stop.is_set():
                self.health.beat()
                self._commit_to_kafka()
                if self.store.maintenance_due():
                    self._drain()
                    self.store.maintain()
                # Poll and parse the next batch while the previous one commits (step 3 runs
                # in a worker thread, overlapping this thread's parsing with PostgreSQL's work).
                records = self._poll(wait=self._pending is None)
                batch = self._parse(records) if records else None
                done = self._finish()
                if batch is not None and done is not None and done[0].admission.seeks:
                    # Fetched before those seeks: stale positions for the partitions that move.
                    batch = _without_partitions(batch, set(done[0].admission.seeks))
                if batch is not None and batch.records:
                    self._pending = (batch, workers.submit(self._attempt, batch))
                if done is not None:
                    # Kafka commit, DLQ topic and Redis of the committed batch run while the
                    # next batch's transaction does (they never use its connection).
                    self._after_commit(*done)
            self._drain()
            log.info("stopping: batch finished, committing and leaving the group")
        return 0

    def _migrate(self) -> bool:
        backoff = 0.5
        while not self.stop.is_set():
            self.health.beat()
            try:
                applied = self.store.apply_migrations()
            except migrate.DatabaseUnavailableError as error:
                self._set_ready(ready=False)
                log.warning("cannot migrate yet; retrying", extra={"error": str(error)})
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff_seconds)
                continue
            except migrate.MigrationError:
                log.exception("schema migration refused")
                return False
            if applied:
                log.info("migrations applied", extra={"applied": [m.label for m in applied]})
            return True
        return False

    def _claim_sink(self) -> bool:
        """With a sink owner set: write only a sink this consumer's EventConsumer owns. A sink
        another one owns is waited for (not ready, saying whose it is): the operator hands it
        over when that one is gone. False: stopped while waiting."""
        settings = self.settings
        if settings.sink_owner is None:
            return True
        me = migrate.SinkOwner(settings.sink_owner, None, settings.group)
        while not self.stop.is_set():
            self.health.beat()
            try:
                found = self.store.claim_sink(me)
            except migrate.MigrationError as error:
                log.warning("cannot claim the sink yet; retrying", extra={"error": str(error)})
            else:
                if found.owner == me.owner:
                    return True
                log.error(
                    "this database's sink is written by another EventConsumer; waiting",
                    extra={"sink": self.sink, "owner": found.owner, "me": me.owner},
                )
            self._set_ready(ready=False)
            deadline = time.monotonic() + SINK_RECHECK_SECONDS
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.health.beat()  # waiting correctly is not a reason to be killed
                self.stop.wait(0.5)
        return False

    def _commit_to_kafka(self, *, now: bool = False) -> None:
        """Send Kafka the offsets it has not seen yet, at most every
        KAFKA_COMMIT_INTERVAL_SECONDS unless `now`."""
        if self._kafka is None or not (now or time.monotonic() >= self._next_kafka_commit):
            return
        unsent = offsets_not_sent(self._committed, self._sent_to_kafka, self._assigned)
        if not unsent:
            return
        self._next_kafka_commit = time.monotonic() + KAFKA_COMMIT_INTERVAL_SECONDS
        self._sent_to_kafka.update(unsent)
        try:
            self._kafka.commit(
                offsets=[TopicPartition(t, p, n) for (t, p), n in unsent.items()],
                asynchronous=True,
            )
        except KafkaException as error:
            log.warning("Kafka offset commit failed", extra={"error": str(error)})

    def _close_kafka(self) -> None:
        if self._kafka is None:
            return
        offsets = [
            TopicPartition(t, p, n)
            for (t, p), n in self._committed.items()
            if (t, p) in self._assigned
        ]
        if offsets:
            # Asynchronous: close() delivers it while the broker is there, and does not hang on
            # it when the broker is gone (PostgreSQL has the offsets that count).
            try:
                self._kafka.commit(offsets=offsets, asynchronous=True)
            except KafkaException as error:
                log.warning("final Kafka commit failed", extra={"error": str(error)})
        self._kafka.close()
        self._kafka = None

    def _set_ready(self, *, ready: bool) -> None:
        self.health.ready = ready
        self.metrics.ready.set(1 if ready else 0)

    # ---------------------------------------------------------------------------- PostgreSQL

    def _mirror_db(self) -> psycopg2.extensions.connection:
        """The connection of Redis rebuilds, which may read while a batch commits."""
        if self._mirror_connection is None or self._mirror_connection.closed:
            self._mirror_connection = connect(self.settings)
        return self._mirror_connection

    def _close_mirror_connection(self) -> None:
        if self._mirror_connection is not None:
            try:
                self._mirror_connection.close()
            except psycopg2.Error:
                log.debug("closing a broken connection failed", exc_info=True)
            self._mirror_connection = None

    # --------------------------------------------------------------------------------- Kafka

    def _read_topic_ids(self, topics: Collection[str]) -> dict[str, str]:
        """Kafka's ids of `topics` (those it could name within the timeout)."""
        if self._admin is None:
            self._admin = confluent_kafka.admin.AdminClient(
                {"bootstrap.servers": self.settings.kafka_bootstrap},
                logger=logging.getLogger("eventfleet.consumer.kafka"),
            )
        found: dict[str, str] = {}
        futures = self._admin.describe_topics(
            confluent_kafka.TopicCollection(sorted(topics)),
            request_timeout=TOPIC_ID_TIMEOUT_SECONDS,
        )
        for topic, future in futures.items():
            try:
                found[topic] = str(future.result(timeout=TOPIC_ID_TIMEOUT_SECONDS).topic_id)
            except (KafkaException, TimeoutError) as error:
                log.warning(
                    "cannot read the topic's id", extra={"topic": topic, "error": str(error)}
                )
        self._topic_ids.update(found)
        return found

    def _topic_ids_of(self, topics: Collection[str]) -> dict[str, str]:
        """The ids of the batch's topics (read now if not known since the last assignment)."""
        missing = [t for t in topics if t not in self._topic_ids]
        if missing:
            self._read_topic_ids(missing)
        unknown = [t for t in topics if t not in self._topic_ids]
        if unknown:
            raise TopicIdUnavailableError(f"Kafka did not name the id of topic {unknown[0]}")
        return {t: self._topic_ids[t] for t in topics}

    def _on_assign(
        self, consumer: confluent_kafka.Consumer, partitions: list[TopicPartition]
    ) -> None:
        self._drain(retry=False)  # the worker must be done with the connection
        tps = [(tp.topic, tp.partition) for tp in partitions]
        stored = self.store.stored_offsets(tps)
        # A new assignment may be a new incarnation of a topic: its id is read again.
        topics = {t for t, _ in tps}
        for topic in topics:
            self._topic_ids.pop(topic, None)
        topic_ids = self._read_topic_ids(topics) if topics else {}
        starts, recreated = restart_recreated(stored, topic_ids)
        for tp in partitions:
            offset = starts.get((tp.topic, tp.partition), NO_OFFSET)
            if offset >= 0:
                tp.offset = offset
        if recreated:
            log.warning(
                "topic deleted and created again since the stored progress: its new "
                "incarnation is read from the beginning",
                extra={"partitions": [f"{t}/{p}" for t, p in sorted(recreated)]},
            )
        consumer.assign(partitions)
        self._assigned.update(tps)
        for tp_key in tps:
            self._accepted_gaps.pop(tp_key, None)
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{t}/{p}@{starts.get((t, p), 'kafka')}" for t, p in tps]},
        )

    def _on_revoke(
        self,
        consumer: confluent_kafka.Consumer,  # noqa: ARG002 - the callback's signature
        partitions: list[TopicPartition],
    ) -> None:
        # Flush before giving the partitions up: the batch in flight commits (or, if the
        # database fails now, is dropped uncommitted for the next owner to redo).
        self._drain(retry=False)
        self._commit_to_kafka(now=True)  # while this member still owns them
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._assigned.discard(key)
            self._committed.pop(key, None)
            self._sent_to_kafka.pop(key, None)
            with suppress(KeyError):
                self.metrics.lag.remove(tp.topic, str(tp.partition))
        log.info(
            "partitions revoked",
            extra={"partitions": [f"{t.topic}/{t.partition}" for t in partitions]},
        )

    def _poll(self, *, wait: bool = True) -> list[Record]:
        if self._kafka is None:
            raise RuntimeError("the Kafka consumer is not running")
        timeout = IDLE_POLL_SECONDS if wait else 0
        first = self._kafka.poll(timeout)
        if first is None:
            return []
        messages = [first]
        size = self.settings.batch_size
        if size > 1:
            messages.extend(self._kafka.consume(size - 1, timeout=0))
            kind, produced = first.timestamp()
            fill = fill_wait_seconds(
                time.time() * 1000,
                produced if kind != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None,
                self.settings.batch_timeout_ms,
            )
            deadline = time.monotonic() + fill
            # In slices: a stop request is seen within half a second even with long timeouts.
            while len(messages) < size and not self.stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                messages.extend(self._kafka.consume(size - len(messages), timeout=min(left, 0.5)))
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("Kafka reported an error", extra={"error": str(error)})
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:
                continue
            records.append(Record(topic, partition, offset, message.value() or b""))
        self.metrics.consumed.inc(len(records))
        return records

    def _wait(self, seconds: float) -> None:
        """Back off while keeping the group membership alive: partitions paused, poll served."""
        if self._kafka is None:
            return
        paused = [TopicPartition(t, p) for t, p in self._assigned]
        if paused:
            self._kafka.pause(paused)
        deadline = time.monotonic() + seconds
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.health.beat()
                # A message here was fetched before the pause; dropping it leaves a gap that
                # the next transaction detects, so we seek back to it.
                self._kafka.poll(min(0.2, max(deadline - time.monotonic(), 0)))
        finally:
            still = [tp for tp in paused if (tp.topic, tp.partition) in self._assigned]
            if still:
                self._kafka.resume(still)

    # --------------------------------------------------------------------------------- batch

    def _parse(self, records: list[Record], topic_ids: dict[str, str] | None = None) -> Batch:
        """Parse and stage (pure work, in the polling thread), with the topic ids known now; the
        transaction parses again if they turn out to be others (see _transaction)."""
        now = datetime.now(UTC)
        if topic_ids is None:
            known = self._topic_ids
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
        except (psycopg2.Error, FencedError, TopicIdUnavailableError) as error:
            return error

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
            self._set_ready(ready=True)
            return result, batch
        self._failed(result)
        if not retry:
            return None
        outcome = self._handle(batch)
        return None if outcome is None else (outcome, batch)

    def _failed(self, error: BaseException) -> None:
        self.metrics.db_errors.inc()
        self._set_ready(ready=False)
        self.store.close()
        log.warning("batch not committed", extra={"error": str(error).strip()})

    def _handle(self, batch: Batch) -> Outcome | None:
        """Retry a failed batch until it commits (None: the consumer stops first), backing off."""
        backoff = 0.2
        while True:
            if self.stop.is_set():
                return None  # nothing was committed: whoever consumes next redoes this batch
            self._wait(backoff)
            backoff = min(backoff * 2, self.settings.max_backoff_seconds)
            owned = [r for r in batch.records if r.tp in self._assigned]
            if len(owned) != len(batch.records):
                batch.records = owned
                batch.good = [g for g in batch.good if g.record.tp in self._assigned]
                batch.bad = [b for b in batch.bad if b.record.tp in self._assigned]
                batch.repeated = [g for g in batch.repeated if g.record.tp in self._assigned]
                batch.staged = None
            if not batch.records:
                return None
            try:
                outcome = self._transaction(batch)
                break
            except (psycopg2.Error, FencedError, TopicIdUnavailableError) as error:
                self._failed(error)
        self._set_ready(ready=True)
        return outcome

    def _transaction(self, batch: Batch) -> Outcome:
        topic_ids = self._topic_ids_of({r.topic for r in batch.records})
        if batch.topic_ids != topic_ids:
            # Parsed before the ids were known (or a new incarnation since): derived event ids
            # must name the incarnation, so the batch is parsed again.
            fresh = self._parse(batch.records, topic_ids)
            batch.good, batch.bad, batch.repeated = fresh.good, fresh.bad, fresh.repeated
            batch.staged, batch.topic_ids = fresh.staged, topic_ids
        return self.store.transact(batch, topic_ids, self._accepted_gaps)

    def _after_commit(self, outcome: Outcome, batch: Batch) -> None:
        admission = outcome.admission
        committed_at = outcome.committed_at
        metrics = self.metrics
        if admission.next_offsets:
            self._committed.update(admission.next_offsets)
            self._commit_to_kafka()
        for (topic, partition), offset in admission.seeks.items():
            self._seek(topic, partition, offset)
        if self.dlq is not None and outcome.dlq:
            self.dlq.produce(outcome.dlq)
        if self.redis is not None and (outcome.redis_values or self.redis.dirty):
            floors = self.redis.floors
            try:
                ops = [op for values in outcome.redis_values for op in values(floors)]
            except Exception:
                # PostgreSQL has the batch; Redis is rebuilt from it instead of patched.
                metrics.internal_errors.labels("redis").inc()
                log.exception("building the batch's Redis values raised; Redis is rebuilt")
                self.redis.dirty = True
                ops = []
            self._publish(ops, admission.next_offsets)
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
        self._update_lag(admission.next_offsets)

    def _seek(self, topic: str, partition: int, offset: int) -> None:
        if self._kafka is None or (topic, partition) not in self._assigned:
            return
        self._accepted_gaps[(topic, partition)] = offset
        try:
            self._kafka.seek(TopicPartition(topic, partition, offset))
            log.info(
                "repositioned to the stored offset",
                extra={"partition": f"{topic}/{partition}", "offset": offset},
            )
        except KafkaException as error:
            log.warning("seek failed; the next batch retries", extra={"error": str(error)})

    # Reads for a rebuild use a connection of their own: the next batch's transaction may be
    # running on the main one.
    def _mirror_snapshot(self) -> Iterator[list[RedisOp]]:
        return self.mode.snapshot(self._mirror_db(), datetime.now(UTC))

    def _mirror_reread(self, keys: list[str]) -> list[RedisOp]:
        return self.mode.reread(self._mirror_db(), keys)

    def _mirror_stored(self) -> dict[TP, int]:
        connection = self._mirror_db()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT topic, kafka_partition, next_offset FROM sink_offsets WHERE sink = %s",
                (self.sink,),
            )
            found = {(t, p): o for t, p, o in cursor.fetchall()}
        connection.commit()
        return found

    def _verify_redis(self) -> None:
        """Before the first batch: rebuild Redis only if it is really behind PostgreSQL."""
        if self.redis is not None:
            mirror = self.redis
            self._mirror_safely(
                lambda: mirror.verify(snapshot=self._mirror_snapshot, stored=self._mirror_stored)
            )

    def _publish(self, ops: list[RedisOp], offsets: dict[TP, int]) -> None:
        if self.redis is not None:
            mirror = self.redis
            self._mirror_safely(
                lambda: mirror.publish(
                    ops,
                    offsets,
                    snapshot=self._mirror_snapshot,
                    stored=self._mirror_stored,
                    reread=self._mirror_reread,
                )
            )

    def _mirror_safely(self, write: Callable[[], None]) -> None:
        """Redis never stops the pipeline: a failure is counted and logged, and the mirror
        rebuilds once it can."""
        if self.redis is None:
            return
        resyncs, rewritten = self.redis.resyncs, self.redis.rewritten
        try:
            write()
        except redis.RedisError as error:
            self.metrics.redis_errors.inc()
            log.warning("Redis write failed; will rebuild when back", extra={"error": str(error)})
        except psycopg2.Error as error:
            self.redis.dirty = True
            self._close_mirror_connection()
            log.warning("Redis rebuild could not read PostgreSQL", extra={"error": str(error)})
        except Exception:
            # Redis never stops the pipeline, not even through a bug of ours: logged, counted,
            # and the mirror tries a rebuild at the next batch.
            self.redis.dirty = True
            self.metrics.internal_errors.labels("redis").inc()
            log.exception("the Redis mirror raised; it rebuilds at the next batch")
        if self.redis.resyncs != resyncs:
            self.metrics.redis_resyncs.inc()
        if self.redis.rewritten != rewritten:
            self.metrics.redis_rewrites.inc(self.redis.rewritten - rewritten)

    def _update_lag(self, offsets: dict[TP, int]) -> None:
        if self._kafka is None:
            return
        for (topic, partition), next_offset in offsets.items():
            try:
                _low, high = self._kafka.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high is not None and high >= 0:
                self.metrics.lag.labels(topic, str(partition)).set(max(high - next_offset, 0))


def offsets_not_sent(
    committed: Mapping[TP, int], sent: Mapping[TP, int], assigned: Collection[TP]
) -> dict[TP, int]:
    """The next offsets of assigned partitions that Kafka has not been sent yet (a partition
    given up meanwhile is its next owner's to commit)."""
    return {tp: n for tp, n in committed.items() if tp in assigned and sent.get(tp) != n}


def _without_partitions(batch: Batch, tps: set[TP]) -> Batch:
    """The batch minus the records of `tps` (the same batch when it has none of them; the mode
    stages a smaller one again in its transaction)."""
    if not any(r.tp in tps for r in batch.records):
        return batch
    return Batch(
        [r for r in batch.records if r.tp not in tps],
        [g for g in batch.good if g.record.tp not in tps],
        [b for b in batch.bad if b.record.tp not in tps],
        batch.now,
        batch.started,
        repeated=[g for g in batch.repeated if g.record.tp not in tps],
        topic_ids=batch.topic_ids,
    )
