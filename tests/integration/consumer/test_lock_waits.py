"""Bounded waits on PostgreSQL locks: another session holds what the consumer needs (the sink's
offset rows, as an old owner cut off mid-transaction would; the migration lock, as the operator
rebuilding an index would). The consumer stays live, says what it waits for, and proceeds when
the lock goes."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime

import psycopg2
import psycopg2.extensions
import pytest

from eventfleet.consumer import migrate
from eventfleet.consumer.runtime import Consumer
from eventfleet.consumer.settings import ConsumerSettings
from tests.fixtures.net import free_port
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.helpers import processed_count, produce_events, running

pytestmark = pytest.mark.integration
EVENTS = 40


def events() -> list[dict[str, object]]:
    return [
        {
            "event_id": f"00000000-0000-4000-8000-{n:012d}",
            "event_type": "player_login",
            "player_id": f"p{n % 5}",
            "game_id": "g",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {"platform": "pc"},
        }
        for n in range(EVENTS)
    ]


def answer(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


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


def stays_live(consumer: Consumer, port: int, seconds: float, words: tuple[str, ...]) -> None:
    """For `seconds`: the heartbeat stays fresh and /healthz answers 200 naming the wait."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert consumer.health.seconds_since_beat < 3.0, "the loop stopped beating while it waits"
        status, body = answer(port, "/healthz")
        assert status == 200, body
        for word in words:
            assert word in body, body
        time.sleep(0.5)


def test_offset_rows_locked_by_another_session_keep_the_consumer_live_until_released(
    stack: Stack,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=1)
    migrate.apply(postgres_dsn, "logger")
    connection = psycopg2.connect(postgres_dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sink_offsets (sink, topic, kafka_partition, next_offset) "
            "VALUES ('logger', %s, 0, -1)",
            (topic,),
        )
    connection.close()
    produce_events(stack.kafka_bootstrap, topic, events())
    port = free_port()
    settings = consumer_settings(
        "logger",
        topic,
        http_port=port,
        http_host="127.0.0.1",
        postgres_lock_timeout_seconds=0.5,
    )
    consumer = Consumer(settings)
    # An old owner cut off mid-batch: it locked the offset row and never finished.
    lock = "SELECT * FROM sink_offsets WHERE topic = %s FOR UPDATE"
    with running(consumer):
        with holding(postgres_dsn, lock, topic) as holder:
            wait_for(
                lambda: lock_waits(consumer, "offset_rows") >= 2,
                timeout=30,
                what="lock waits that time out and retry",
            )
            stays_live(consumer, port, 5.0, ("waiting for", "offset rows", f"pid {holder}"))
            assert answer(port, "/readyz")[0] == 503
            assert processed_count(postgres_dsn) == 0
        wait_for(lambda: processed_count(postgres_dsn) >= EVENTS, timeout=60, what="the batch")
        wait_for(lambda: answer(port, "/healthz") == (200, "ok\n"), timeout=10, what="ok")


def test_the_migration_lock_held_elsewhere_keeps_the_consumer_live_until_released(
    stack: Stack,
    create_topic: Callable[..., str],
    postgres_dsn: str,
    consumer_settings: Callable[..., ConsumerSettings],
) -> None:
    topic = create_topic(partitions=1)
    produce_events(stack.kafka_bootstrap, topic, events())
    port = free_port()
    settings = consumer_settings(
        "logger",
        topic,
        http_port=port,
        http_host="127.0.0.1",
        postgres_lock_timeout_seconds=0.5,
    )
    consumer = Consumer(settings)
    advisory = "SELECT pg_advisory_lock(%s)"
    with ExitStack() as lock:
        # Held before the consumer starts: its migrations must meet the lock, however fast
        # it gets to them.
        holder = lock.enter_context(holding(postgres_dsn, advisory, migrate.ADVISORY_LOCK_KEY))
        with running(consumer):
            wait_for(
                lambda: lock_waits(consumer, "migration") >= 2,
                timeout=30,
                what="migration lock waits that time out and retry",
            )
            stays_live(consumer, port, 5.0, ("waiting for", "migration lock", f"pid {holder}"))
            assert answer(port, "/readyz")[0] == 503
            lock.close()  # released: the consumer proceeds
            wait_for(
                lambda: processed_count(postgres_dsn) >= EVENTS,
                timeout=60,
                what="migrations, then the events",
            )
            wait_for(lambda: answer(port, "/healthz") == (200, "ok\n"), timeout=10, what="ok")
