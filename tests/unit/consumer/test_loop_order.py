"""The loop's commit order (runtime.py's docstring), with fakes for Kafka, PostgreSQL and Redis
handed to a real Consumer: the fakes only write down what happened, in one shared log, and the
tests read the order off it. The fake transaction runs in the Consumer's worker thread, as the
real one does, and takes a few milliseconds, so a loop that did not wait for it would be seen."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from eventfleet.consumer import migrate
from eventfleet.consumer.batch import Admission, Batch, Record
from eventfleet.consumer.modes.base import RedisValues
from eventfleet.consumer.runtime import Consumer
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.consumer.store import FencedError, Outcome

T = "events"
TP = tuple[str, int]
SIZE = 3  # records per batch: batch n holds offsets 3n, 3n+1, 3n+2 of partition 0
TRANSACTION_SECONDS = 0.01
Entry = tuple[str, int]  # (what happened, the batch it happened to; -1: none)


def records_of(n: int) -> list[Record]:
    return [Record(T, 0, offset, b"{}") for offset in range(SIZE * n, SIZE * n + SIZE)]


def batch_of(offsets: Mapping[TP, int]) -> int:
    """The batch whose commit moved partition 0 to these next offsets."""
    return offsets[(T, 0)] // SIZE - 1


@dataclass
class Log:
    entries: list[Entry] = field(default_factory=list)
    # A held transaction waits for this (the fake Kafka sets it where the test needs it).
    released: threading.Event = field(default_factory=threading.Event)
    most_in_flight: int = 0  # transactions running at once, at most

    def add(self, what: str, n: int = -1) -> None:
        self.entries.append((what, n))  # list.append is atomic: two threads write here

    def before(self, first: Entry, then: Entry) -> bool:
        """Both happened, `first` (the first time) before `then` (the first time)."""
        entries = self.entries
        return first in entries and then in entries and entries.index(first) < entries.index(then)

    def of(self, what: str) -> list[int]:
        """The batches `what` happened to, in order."""
        return [n for w, n in self.entries if w == what]


class FakeKafka:
    """Hands out the scripted steps, one per poll; when they run out, the consumer stops."""

    def __init__(self, log: Log, stop: threading.Event, script: list[Step]) -> None:
        self.log, self.stop, self.script = log, stop, deque(script)
        self.assigned: set[TP] = {(T, 0)}
        self.topic_ids: dict[str, str] = {T: "topic-id"}
        self.accepted_gaps: dict[TP, int] = {}
        self.finish: Callable[[], None] = lambda: None

    def subscribe(
        self,
        *,
        finish: Callable[[], None],
        stored: Callable[[Sequence[TP]], Mapping[TP, tuple[int, str | None]]],  # noqa: ARG002
    ) -> None:
        self.finish = finish

    def poll(self, *, wait: bool = True) -> list[Record]:  # noqa: ARG002
        if not self.script:
            self.stop.set()
            return []
        return self.script.popleft()(self)

    def wait(self, seconds: float) -> None:  # noqa: ARG002
        self.log.add("backoff")

    def commit(self, offsets: Mapping[TP, int] | None = None, *, now: bool = False) -> None:  # noqa: ARG002
        if offsets:
            self.log.add("kafka", batch_of(offsets))

    def seek(self, topic: str, partition: int, offset: int) -> None:
        raise AssertionError(f"no seek expected ({topic}/{partition}@{offset})")

    def update_lag(self, offsets: dict[TP, int]) -> None:
        pass

    def topic_ids_of(self, topics: Collection[str]) -> dict[str, str]:
        return {t: self.topic_ids[t] for t in topics}

    def recheck_topic_ids(self, topics: Collection[str]) -> None:
        pass

    def close(self) -> None:
        self.log.add("closed")


Step = Callable[[FakeKafka], list[Record]]


def batch(n: int) -> Step:
    return lambda _kafka: records_of(n)


def last(n: int) -> Step:
    """Batch n, and SIGTERM while it is being gathered."""

    def step(kafka: FakeKafka) -> list[Record]:
        kafka.stop.set()
        return records_of(n)

    return step


def revoke(kafka: FakeKafka) -> list[Record]:
    """A rebalance inside poll, as librdkafka calls on_revoke: the Consumer's hook runs, then
    the partitions are gone. A held transaction goes on only once the revoke has begun."""
    kafka.log.add("revoking")
    kafka.log.released.set()
    kafka.finish()
    kafka.log.add("revoked")
    return []


class FakeStore:
    def __init__(
        self, log: Log, *, fail_once: Collection[int] = (), hold: Collection[int] = ()
    ) -> None:
        self.log = log
        self.fail_once = set(fail_once)
        self.hold = set(hold)
        self.in_flight = 0
        self._lock = threading.Lock()

    def apply_migrations(self) -> list[migrate.Migration]:
        return []

    def claim_sink(self, me: migrate.SinkOwner) -> migrate.SinkOwner:
        return me

    def stored_offsets(self, tps: Sequence[TP]) -> dict[TP, tuple[int, str | None]]:  # noqa: ARG002
        return {}

    def transact(
        self,
        batch: Batch,
        topic_ids: dict[str, str],  # noqa: ARG002
        accepted_gaps: dict[TP, int],  # noqa: ARG002
    ) -> Outcome:
        n = batch.records[0].offset // SIZE
        with self._lock:
            self.in_flight += 1
            self.log.most_in_flight = max(self.log.most_in_flight, self.in_flight)
        try:
            self.log.add("begin", n)
            time.sleep(TRANSACTION_SECONDS)
            if n in self.hold:
                assert self.log.released.wait(5), "held for good"
            if n in self.fail_once:
                self.fail_once.discard(n)
                self.log.add("rolled back", n)
                raise FencedError("the fake database failed")
            self.log.add("commit", n)
        finally:
            with self._lock:
                self.in_flight -= 1
        admission = Admission(list(batch.records), {(T, 0): batch.records[-1].offset + 1})
        return Outcome(admission, list(batch.good), list(batch.bad))

    def maintenance_due(self) -> bool:
        return False

    def maintain(self) -> None:
        raise AssertionError("no maintenance expected")

    def close(self) -> None:
        self.log.add("store closed")


class FakeMirror:
    def __init__(self, log: Log) -> None:
        self.log = log

    def verify(self) -> None:
        self.log.add("verified")

    def publish(self, values: list[RedisValues], offsets: dict[TP, int]) -> None:  # noqa: ARG002
        self.log.add("redis", batch_of(offsets))

    def repair_when_idle(self) -> None:
        pass  # a no-op here: it only acts on a mirror a failed write left untrusted

    def close(self) -> None:
        self.log.add("mirror closed")


def run(
    script: list[Step], *, fail_once: Collection[int] = (), hold: Collection[int] = ()
) -> tuple[Log, Consumer]:
    log = Log()
    stop = threading.Event()
    settings = ConsumerSettings(
        mode="logger", kafka_bootstrap="fake:9092", postgres_dsn="postgresql://fake", http_port=0
    )
    consumer = Consumer(
        settings,
        stop=stop,
        source=FakeKafka(log, stop, script),
        store=FakeStore(log, fail_once=fail_once, hold=hold),
        mirror=FakeMirror(log),
    )
    assert consumer.run() == 0
    return log, consumer


def test_kafka_and_redis_hear_of_a_batch_only_after_its_transaction_committed() -> None:
    log, _ = run([batch(n) for n in range(5)])
    for n in range(5):
        assert log.before(("commit", n), ("kafka", n))
        assert log.before(("commit", n), ("redis", n))


def test_at_most_one_transaction_is_in_flight() -> None:
    log, _ = run([batch(n) for n in range(6)])
    assert log.most_in_flight == 1
    transactions = [(w, n) for w, n in log.entries if w in {"begin", "commit"}]
    assert transactions == [(w, n) for n in range(6) for w in ("begin", "commit")]


def test_kafka_and_redis_get_the_batches_in_commit_order() -> None:
    # Rebalances in the middle finish a batch out of the usual turn: the order still holds.
    log, _ = run([batch(0), batch(1), revoke, batch(2), batch(3), revoke, last(4)])
    assert log.of("commit") == log.of("kafka") == log.of("redis") == [0, 1, 2, 3, 4]


def test_a_failed_transaction_is_retried_and_sent_nowhere_until_it_commits() -> None:
    log, _ = run([batch(n) for n in range(4)], fail_once={2})
    # The same batch again after a backoff, before any later one ...
    assert [e for e in log.entries if e[0] in {"begin", "rolled back", "commit", "backoff"}] == [
        *[("begin", 0), ("commit", 0), ("begin", 1), ("commit", 1)],
        *[("begin", 2), ("rolled back", 2), ("backoff", -1), ("begin", 2), ("commit", 2)],
        *[("begin", 3), ("commit", 3)],
    ]
    # ... and Kafka and Redis hear of it once, after it committed.
    assert [e for e in log.entries if e[1] == 2] == [
        *[("begin", 2), ("rolled back", 2), ("begin", 2), ("commit", 2)],
        *[("kafka", 2), ("redis", 2)],
    ]


def test_on_revoke_the_batch_in_flight_finishes_before_the_partitions_are_given_up() -> None:
    # Batch 1's transaction is held until the revoke has begun: it is in flight then.
    log, _ = run([batch(0), batch(1), revoke, batch(2)], hold={1})
    for what in ("commit", "kafka", "redis"):
        assert log.before((what, 1), ("revoked", -1))


def test_on_stop_the_last_batch_commits_and_is_sent_before_kafka_closes() -> None:
    log, _ = run([batch(0), batch(1), last(2)])
    for what in ("commit", "kafka", "redis"):
        assert log.before((what, 2), ("closed", -1))
