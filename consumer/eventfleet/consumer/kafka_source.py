"""Kafka (steps 1 and 4 of the order in runtime.py): polling and gathering batches, pausing
while a batch is retried, seeking, the Kafka side of rebalances, sending Kafka its copy of the
offsets (which ones and how often: kafka_commits.py), the lag gauge and reading topic ids
through the admin client.

A KafkaSource holds the partitions assigned to this member and the next offsets PostgreSQL
committed for them; what is processed is decided in the transaction (batch.admit), never here.
Kafka's copy is true, not only eventually fed: assigned partitions start from PostgreSQL's
offsets and Kafka is sent them at once, and a commit counts as sent only once Kafka confirmed
it (a refused one is sent again).
All of it runs in the polling thread, except topic_ids_of: the transaction calls it in the
worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import suppress
from typing import Any, Final

import confluent_kafka
import confluent_kafka.admin
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from eventfleet.consumer.batch import NO_OFFSET, Record, fill_wait_seconds, restart_recreated
from eventfleet.consumer.kafka_commits import (
    KAFKA_COMMIT_INTERVAL_SECONDS,
    offsets_not_sent,
    settle_commit,
)
from eventfleet.consumer.kafka_refusal import KafkaRefusal
from eventfleet.consumer.observability import Health, Metrics
from eventfleet.consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)
TP = tuple[str, int]
FETCH_MIN_BYTES: Final = 256 * 1024
# How long an idle loop blocks in poll: a record ends the wait at once, so this only paces the
# loop's own chores (heartbeat, maintenance, the stop flag). Tying it to batchTimeoutMs woke an
# idle consumer 50 times a second at 20 ms.
IDLE_POLL_SECONDS: Final = 0.5
# How long the Kafka admin may take to name a topic's id.
TOPIC_ID_TIMEOUT_SECONDS: Final = 10.0
# The stored next offsets (and the topic ids they count in) of partitions being assigned.
StoredOffsets = Callable[[Sequence[TP]], Mapping[TP, tuple[int, str | None]]]


class TopicIdUnavailableError(Exception):
    """Kafka did not name a topic's id: the batch waits (retried like a database error), since
    writing without it could not tell a recreated topic from the old one."""


def _no_offsets(tps: Sequence[TP]) -> dict[TP, tuple[int, str | None]]:  # noqa: ARG001
    return {}


class KafkaSource:
    """The Kafka consumer of one process (subscribe() creates it) and what it was told."""

    def __init__(
        self,
        settings: ConsumerSettings,
        metrics: Metrics,
        health: Health,
        stop: threading.Event,
        *,
        kafka_config: dict[str, Any] | None = None,
        kafka_auth: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.kafka_auth: dict[str, str] = dict(kafka_auth or {})
        self.metrics = metrics
        self.health = health
        self.stop = stop
        self.refusal = KafkaRefusal(health)
        self.config: dict[str, Any] = {
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
            # Commits are confirmed here (served by poll, in the polling thread).
            "on_commit": self._on_commit,
            "error_cb": self.refusal,  # refused credentials: not ready (kafka_refusal.py)
            **self.kafka_auth,
            **(kafka_config or {}),
        }
        self.assigned: set[TP] = set()
        self.topic_ids: dict[str, str] = {}  # Kafka's id of each topic, read on assignment
        # Topics whose id is read again before the next transaction (see recheck_topic_ids).
        self._recheck: set[str] = set()
        self.accepted_gaps: dict[TP, int] = {}  # sought to: a gap from there is accepted (admit)
        self.committed: dict[TP, int] = {}  # next offsets in PostgreSQL, per assigned partition
        self.sent_to_kafka: dict[TP, int] = {}  # what Kafka confirmed of those
        self.in_flight: dict[TP, int] = {}  # sent, not answered yet
        self._next_kafka_commit = 0.0
        self._kafka: confluent_kafka.Consumer | None = None
        self._admin: confluent_kafka.admin.AdminClient | None = None
        self._finish: Callable[[], None] = lambda: None
        self._stored: StoredOffsets = _no_offsets

    def subscribe(self, *, finish: Callable[[], None], stored: StoredOffsets) -> None:
        """Join the group. On a rebalance, inside poll: `finish` the batch in flight before
        partitions change hands, and start assigned ones from their `stored` offsets."""
        self._finish, self._stored = finish, stored
        self._kafka = confluent_kafka.Consumer(self.config)
        self._kafka.subscribe(
            [self.settings.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def commit(self, offsets: Mapping[TP, int] | None = None, *, now: bool = False) -> None:
        """Send Kafka the offsets it has not seen yet (with `offsets`, the ones PostgreSQL just
        committed), at most every KAFKA_COMMIT_INTERVAL_SECONDS unless `now`."""
        if offsets:
            self.committed.update(offsets)
        if self._kafka is None or not (now or time.monotonic() >= self._next_kafka_commit):
            return
        unsent = offsets_not_sent(self.committed, self.sent_to_kafka, self.assigned, self.in_flight)
        if not unsent:
            return
        self._next_kafka_commit = time.monotonic() + KAFKA_COMMIT_INTERVAL_SECONDS
        try:
            self._kafka.commit(
                offsets=[TopicPartition(t, p, n) for (t, p), n in unsent.items()],
                asynchronous=True,
            )
        except KafkaException as error:
            log.warning("Kafka offset commit failed; retrying", extra={"error": str(error)})
            return
        self.in_flight.update(unsent)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """Kafka's answer to an asynchronous commit (inside poll)."""
        confirmed: dict[TP, int] = {}
        refused: dict[TP, int] = {}
        reasons = []
        for tp in partitions:
            if error is None and tp.error is None:
                confirmed[(tp.topic, tp.partition)] = tp.offset
            else:
                refused[(tp.topic, tp.partition)] = tp.offset
                reasons.append(f"{tp.topic}/{tp.partition}: {tp.error or error}")
        settle_commit(self.in_flight, self.sent_to_kafka, confirmed, refused)
        if confirmed:
            self.refusal.accepted()
        if refused:
            self.metrics.kafka_commit_failures.inc()
            log.warning("Kafka refused an offset commit; retrying", extra={"refused": reasons})

    def close(self) -> None:
        if self._kafka is None:
            return
        offsets = [
            TopicPartition(t, p, n)
            for (t, p), n in self.committed.items()
            if (t, p) in self.assigned
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

    def _read_topic_ids(self, topics: Collection[str]) -> dict[str, str]:
        """Kafka's ids of `topics` (those it could name within the timeout)."""
        if self._admin is None:
            self._admin = confluent_kafka.admin.AdminClient(
                {"bootstrap.servers": self.settings.kafka_bootstrap, **self.kafka_auth},
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
        self.topic_ids.update(found)
        return found

    def recheck_topic_ids(self, topics: Collection[str]) -> None:
        """Read these topics' ids again before the next transaction. A topic deleted and created
        again under a running consumer need not cause a new assignment: its partitions stay
        assigned and only their records start over at 0, below the stored offsets. The
        transaction then asks for a seek forward, which Kafka answers by resetting to the
        beginning, again and again: so a seek is the sign to look at the id once more."""
        self._recheck.update(topics)

    def topic_ids_of(self, topics: Collection[str]) -> dict[str, str]:
        """The ids of the batch's topics (read now if not known since the last assignment, or
        when asked to recheck them)."""
        again = [t for t in topics if t in self._recheck]
        if again:
            self._recheck.difference_update(again)
            self._read_topic_ids(again)
        missing = [t for t in topics if t not in self.topic_ids]
        if missing:
            self._read_topic_ids(missing)
        unknown = [t for t in topics if t not in self.topic_ids]
        if unknown:
            raise TopicIdUnavailableError(f"Kafka did not name the id of topic {unknown[0]}")
        return {t: self.topic_ids[t] for t in topics}

    def _on_assign(
        self, consumer: confluent_kafka.Consumer, partitions: list[TopicPartition]
    ) -> None:
        self._finish()  # the worker must be done with the connection
        tps = [(tp.topic, tp.partition) for tp in partitions]
        stored = self._stored(tps)
        # A new assignment may be a new incarnation of a topic: its id is read again.
        topics = {t for t, _ in tps}
        for topic in topics:
            self.topic_ids.pop(topic, None)
        topic_ids = self._read_topic_ids(topics) if topics else {}
        starts, recreated = restart_recreated(stored, topic_ids)
        for tp in partitions:
            offset = starts.get((tp.topic, tp.partition), NO_OFFSET)
            if offset >= 0:
                tp.offset = offset
                # Kafka gets PostgreSQL's offsets now, not only after the next batch: its copy
                # may be behind (a crash between the two commits) or gone (expired while the
                # group was empty), and an idle partition would show that as lag forever,
                # keeping replicas up that have nothing to do (issue 15).
                self.committed[(tp.topic, tp.partition)] = offset
        if recreated:
            log.warning(
                "topic deleted and created again since the stored progress: its new "
                "incarnation is read from the beginning",
                extra={"partitions": [f"{t}/{p}" for t, p in sorted(recreated)]},
            )
        consumer.assign(partitions)
        self.refusal.accepted()
        self.assigned.update(tps)
        for tp_key in tps:
            self.accepted_gaps.pop(tp_key, None)
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
        self._finish()
        self.commit(now=True)  # while this member still owns them
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self.assigned.discard(key)
            self.committed.pop(key, None)
            self.sent_to_kafka.pop(key, None)
            self.in_flight.pop(key, None)
            with suppress(KeyError):
                self.metrics.lag.remove(tp.topic, str(tp.partition))
        log.info(
            "partitions revoked",
            extra={"partitions": [f"{t.topic}/{t.partition}" for t in partitions]},
        )

    def poll(self, *, wait: bool = True) -> list[Record]:
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
        if records:
            self.refusal.accepted()
        self.metrics.consumed.inc(len(records))
        return records

    def wait(self, seconds: float) -> None:
        """Back off while keeping the group membership alive: partitions paused, poll served."""
        if self._kafka is None:
            return
        paused = [TopicPartition(t, p) for t, p in self.assigned]
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
            still = [tp for tp in paused if (tp.topic, tp.partition) in self.assigned]
            if still:
                self._kafka.resume(still)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        if self._kafka is None or (topic, partition) not in self.assigned:
            return
        self.accepted_gaps[(topic, partition)] = offset
        try:
            self._kafka.seek(TopicPartition(topic, partition, offset))
            log.info(
                "repositioned to the stored offset",
                extra={"partition": f"{topic}/{partition}", "offset": offset},
            )
        except KafkaException as error:
            log.warning("seek failed; the next batch retries", extra={"error": str(error)})

    def update_lag(self, offsets: dict[TP, int]) -> None:
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
