"""Bounded waits on PostgreSQL locks: another session holds what the consumer needs (the sink's
offset rows, as an old owner cut off mid-transaction would; the migration lock, as the operator
rebuilding an index would). The consumer stays live, says what it waits for, and proceeds when
the lock goes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import psycopg2
import psycopg2.extensions
import pytest

from eventfleet.consumer import migrate
from eventfleet.consumer.runtime import Consumer
from tests.fixtures.consumer_bench import ConsumerBench
from tests.fixtures.net import free_port
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.helpers import event_now, http_answer, http_status, running

pytestmark = pytest.mark.integration
EVENTS = 40


def consumer_of_logins(bench: ConsumerBench, topic: str) -> tuple[Consumer, int]:
    """EVENTS logins on `topic` and a logger consumer of them whose lock waits time out after
    0.5 s, its HTTP server on a port of its own (returned beside it)."""
    bench.produce(
        topic,
        [event_now("player_login", f"p{n % 5}", number=n, platform="pc") for n in range(EVENTS)],
    )
    port = free_port()
    consumer = bench.consumer(
        "logger",
        topic,
        http_port=port,
        http_host="127.0.0.1",
        postgres_lock_timeout_seconds=0.5,
    )
    return consumer, port


@contextmanager
def holding(dsn: str, statement: str, *args: object) -> Iterator[int]:
    """A session that runs `statement` in an open transaction and keeps it open (its locks
    held) until the block ends; yields its backend pid."""
    connection = psycopg2.connect(dsn, application_name="lock-holder")
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, args or None)
            cursor.execute("SELECT pg_backend_pid()")
            row = cursor.fetchone()
        assert row is not None
        yield int(row[0])
    finally:
        connection.rollback()
        connection.close()


def lock_waits(consumer: Consumer, lock: str) -> float:
    for family in consumer.metrics.lock_waits.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("lock") == lock:
                return float(sample.value)
    return 0.0


def waits_live_and_not_ready(consumer: Consumer, port: int, lock: str, *words: str) -> None:
    """The consumer meets `lock` (waits that time out and retry); then for 5 s its heartbeat
    stays fresh and /healthz answers 200 saying what it is waiting for (`words`); /readyz
    answers 503."""
    wait_for(
        lambda: lock_waits(consumer, lock) >= 2,
        timeout=30,
        what=f"{lock} lock waits that time out and retry",
    )
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        assert consumer.health.seconds_since_beat < 3.0, "the loop stopped beating while it waits"
        status, body = http_answer(port, "/healthz")
        assert status == 200, body
        for word in ("waiting for", *words):
            assert word in body, body
        time.sleep(0.5)
    assert http_status(port, "/readyz") == 503


def test_offset_rows_locked_by_another_session_keep_the_consumer_live_until_released(
    bench: ConsumerBench,
) -> None:
    topic = bench.topic(partitions=1)
    migrate.apply(bench.dsn, "logger")
    connection = psycopg2.connect(bench.dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sink_offsets (sink, topic, kafka_partition, next_offset) "
            "VALUES ('logger', %s, 0, -1)",
            (topic,),
        )
    connection.close()
    consumer, port = consumer_of_logins(bench, topic)
    # An old owner cut off mid-batch: it locked the offset row and never finished.
    lock = "SELECT * FROM sink_offsets WHERE topic = %s FOR UPDATE"
    with running(consumer):
        with holding(bench.dsn, lock, topic) as holder:
            waits_live_and_not_ready(consumer, port, "offset_rows", "offset rows", f"pid {holder}")
            assert bench.processed() == 0
        bench.wait_processed(EVENTS, timeout=60, what="the batch")
        wait_for(lambda: http_answer(port, "/healthz") == (200, "ok\n"), timeout=10, what="ok")


def test_the_migration_lock_held_elsewhere_keeps_the_consumer_live_until_released(
    bench: ConsumerBench,
) -> None:
    consumer, port = consumer_of_logins(bench, bench.topic(partitions=1))
    advisory = "SELECT pg_advisory_lock(%s)"
    with ExitStack() as lock:
        # Held before the consumer starts: its migrations must meet the lock, however fast
        # it gets to them.
        holder = lock.enter_context(holding(bench.dsn, advisory, migrate.ADVISORY_LOCK_KEY))
        with running(consumer):
            waits_live_and_not_ready(consumer, port, "migration", "migration lock", f"pid {holder}")
            lock.close()  # released: the consumer proceeds
            bench.wait_processed(EVENTS, timeout=60, what="migrations, then the events")
            wait_for(lambda: http_answer(port, "/healthz") == (200, "ok\n"), timeout=10, what="ok")
