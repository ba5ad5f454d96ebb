"""Failures on the real stack: malformed input, a database that refuses a record, kill -9 in the
middle of batches, PostgreSQL becoming unreachable, SIGTERM, bad configuration."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from confluent_kafka import Consumer as KafkaConsumer

from eventfleet.consumer.runtime import Consumer
from tests.fixtures.consumer_bench import ConsumerBench, in_both_stores
from tests.fixtures.net import TcpProxy, free_port
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.expected import expected_stats, redis_stats, stored_stats
from tests.integration.consumer.helpers import (
    counter,
    event_now,
    generate_events,
    http_status,
    run_until_done,
    running,
    spawn,
)

pytestmark = pytest.mark.integration


def good(n: int, **overrides: Any) -> dict[str, Any]:
    """A valid match_completed of player p<n % 7>, its event_id numbered `n`."""
    return event_now("match_completed", f"p{n % 7}", number=n, score=n, won=n % 2 == 0) | overrides


def encoded(value: object) -> bytes:
    return json.dumps(value).encode()


def malformed_corpus() -> list[tuple[bytes, str]]:
    """(raw bytes, expected DLQ reason): at least 30 ways to be wrong."""
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    missing = good(0)
    del missing["player_id"]
    no_type = good(0)
    del no_type["event_type"]
    no_time = good(0)
    del no_time["timestamp"]
    return [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"not json at all", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b"\xff\xfe\x00binary\x01\x02", "not_utf8"),
        (bytes(range(256)), "not_utf8"),
        (b"[1, 2, 3]", "not_an_object"),
        (b'"just a string"', "not_an_object"),
        (b"null", "not_an_object"),
        (b"42", "not_an_object"),
        (encoded(missing), "missing_field"),
        (encoded(no_type), "missing_field"),
        (encoded(no_time), "missing_field"),
        (encoded({}), "missing_field"),
        (encoded(good(0, player_id=42)), "invalid_field"),
        (encoded(good(0, player_id="a:b")), "invalid_field"),
        (encoded(good(0, game_id="")), "invalid_field"),
        (encoded(good(0, event_type="Not Snake")), "invalid_field"),
        (encoded(good(0, timestamp="yesterday")), "invalid_field"),
        (encoded(good(0, timestamp="2026-11-27T10:00:00")), "invalid_field"),
        (encoded(good(0, timestamp="1999-01-01T00:00:00Z")), "invalid_field"),
        (encoded(good(0, event_id="not-a-uuid")), "invalid_field"),
        (encoded(good(0, data=[1, 2])), "invalid_field"),
        (encoded(good(0, timestamp=future)), "future_timestamp"),
        (encoded(good(0, data={"score": -5, "won": True})), "invalid_data"),
        (encoded(good(0, data={"score": "10", "won": True})), "invalid_data"),
        (encoded(good(0, data={"score": 1.5, "won": True})), "invalid_data"),
        (encoded(good(0, data={"score": 10, "won": "yes"})), "invalid_data"),
        (encoded(good(0, data={"won": True})), "invalid_data"),
        (
            encoded(good(0, event_type="player_level_up", data={"level": 0})),
            "invalid_data",
        ),
        (
            encoded(good(0, event_type="purchase", data={"amount": -1, "currency": "EUR"})),
            "invalid_data",
        ),
        (
            encoded(good(0, event_type="purchase", data={"amount": 5, "currency": "euro"})),
            "invalid_data",
        ),
        (encoded(good(0, event_type="achievement_unlocked", data={})), "invalid_data"),
        (encoded(good(0, data={"score": 1, "won": True, "pad": "x" * 70_000})), "too_large"),
        # Valid JSON and a valid event, but PostgreSQL's jsonb refuses a NUL character: found by
        # bisecting the batch, the rest of the batch is stored.
        (encoded(good(10_001, data={"score": 1, "won": True, "note": "nul\u0000here"})),
         "database_error"),
    ]  # fmt: skip


def test_malformed_records_all_land_in_the_dlq_beside_every_good_event(
    bench: ConsumerBench,
) -> None:
    topic = bench.topic(partitions=2)
    dlq_topic = bench.topic(partitions=1, prefix="dlq")
    corpus = malformed_corpus()
    assert len(corpus) >= 30
    goods = [encoded(good(n)) for n in range(1, 301)]
    # Interleave: bad records sit inside batches of good ones.
    values: list[bytes] = []
    for n, value in enumerate(goods):
        values.append(value)
        if n % 8 == 0 and n // 8 < len(corpus):
            values.append(corpus[n // 8][0])
    assert len(values) == len(goods) + len(corpus)
    bench.produce_raw(topic, values)
    consumer = bench.consumer("logger", topic, dlq_topic=dlq_topic, batch_size=64)
    run_until_done(consumer, len(values))

    stored = bench.rows("SELECT raw, reason, message, topic FROM dlq_events")
    assert sorted((bytes(raw), reason) for raw, reason, _, _ in stored) == sorted(corpus)
    assert all(message for _, _, message, _ in stored)
    assert {t for *_, t in stored} == {topic}
    nul = [m for _, reason, m, _ in stored if reason == "database_error"]
    assert nul
    assert "Unicode" in nul[0] or "\\u0000" in nul[0]
    assert bench.rows("SELECT count(*) FROM events") == [(len(goods),)]
    assert counter(consumer.metrics.processed) == len(goods)

    # The optional DLQ topic got the same records, with the reason in a header.
    reader = KafkaConsumer(
        {
            "bootstrap.servers": bench.stack.kafka_bootstrap,
            "group.id": bench.group + "-reader",
            "auto.offset.reset": "earliest",
        }
    )
    reader.subscribe([dlq_topic])
    seen: list[tuple[bytes, str]] = []
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while len(seen) < len(corpus) and datetime.now(UTC) < deadline:
        message = reader.poll(0.5)
        if message is None or message.error():
            continue
        headers = dict(message.headers() or [])
        reason = headers["reason"]
        text = reason.decode() if isinstance(reason, bytes) else str(reason)
        seen.append((message.value() or b"", text))
    reader.close()
    assert sorted(seen) == sorted(corpus)


@pytest.mark.parametrize("mode", ["stats", "leaderboard"])
def test_a_row_the_database_refuses_is_isolated_and_the_rest_counted_once(
    bench: ConsumerBench, mode: str
) -> None:
    """A player whose total is at the top of bigint: the next score overflows, PostgreSQL
    refuses the batch's upsert, and bisection finds that one event. The slices written before
    and after it share the transaction's staging table: each must be counted exactly once."""
    topic = bench.topic(partitions=1)
    settings = bench.settings(mode, topic, batch_size=1000)
    bench.produce_raw(topic, [encoded(good(1, player_id="hot"))])
    run_until_done(Consumer(settings), 1)
    table = "player_statistics" if mode == "stats" else "leaderboards"
    with contextlib.closing(psycopg2.connect(bench.dsn)) as connection, connection:
        connection.cursor().execute(
            f"UPDATE {table} SET total_score = 9223372036854775000 WHERE player_id = 'hot'"  # noqa: S608 - a constant
        )
    events = [good(n) for n in range(2, 402)]
    poison = good(5000, player_id="hot", data={"score": 10_000, "won": False})
    values = [encoded(e) for e in events[:150]] + [encoded(poison)]
    values += [encoded(e) for e in events[150:]]
    bench.produce_raw(topic, values)
    consumer = Consumer(settings)
    run_until_done(consumer, 1 + len(values))

    refused = bench.rows("SELECT reason, message FROM dlq_events")
    assert [reason for reason, _ in refused] == ["database_error"]
    assert "out of range" in refused[0][1]
    if mode == "stats":
        others = {k: v for k, v in stored_stats(bench.dsn).items() if k[1] != "hot"}
        assert others == expected_stats(events)
    else:
        totals = dict(
            bench.rows(
                "SELECT player_id, total_score FROM leaderboards "
                "WHERE period = 'all_time' AND player_id <> 'hot'",
            )
        )
        expected: dict[str, int] = {}
        for event in events:
            player = event["player_id"]
            expected[player] = expected.get(player, 0) + event["data"]["score"]
        assert totals == expected
    assert counter(consumer.metrics.processed) == len(events)


def test_kill_9_mid_batch_then_restart_loses_and_doubles_nothing(
    bench: ConsumerBench, tmp_path: Path
) -> None:
    events = generate_events(20_000, seed=11, players=200)
    topic = bench.topic_with(events, partitions=3)
    settings = bench.settings("stats", topic, batch_size=50)
    log = tmp_path / "consumer.log"
    first = spawn(settings, log=log)
    try:
        bench.wait_processed(3000, timeout=60, what="progress before the kill")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert bench.processed() < len(events)
    finally:
        if first.poll() is None:
            first.kill()
    second = spawn(settings, log=log)
    try:
        bench.wait_processed(len(events), timeout=120, what="the restarted consumer to finish")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
    assert bench.stats() == in_both_stores(expected_stats(events))
    assert '"message": "stopping: batch finished' in log.read_text()


def test_postgres_unreachable_mid_run_backs_off_not_ready_then_catches_up_exactly(
    bench: ConsumerBench,
) -> None:
    parts = urlsplit(bench.dsn)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"
    via_proxy = urlunsplit(parts._replace(netloc=netloc))
    first = generate_events(3000, seed=21)
    second = generate_events(3000, seed=22)
    topic = bench.topic_with(first, partitions=3)
    port = free_port()
    consumer = bench.consumer(
        "stats", topic, dsn=via_proxy, batch_size=100, http_port=port, http_host="127.0.0.1"
    )
    try:
        with running(consumer):
            bench.wait_processed(1000, timeout=60, what="progress before the outage")
            assert http_status(port, "/readyz") == 200
            proxy.cut()
            bench.produce(topic, second)
            wait_for(lambda: counter(consumer.metrics.db_errors) >= 3, timeout=60, what="retries")
            assert http_status(port, "/readyz") == 503
            assert http_status(port, "/healthz") == 200  # alive: backing off, not crash-looping
            stuck = bench.processed()
            assert stuck < len(first) + len(second)
            proxy.restore()
            bench.wait_processed(
                len(first) + len(second), timeout=90, what="catching up after the outage"
            )
            wait_for(lambda: http_status(port, "/readyz") == 200, timeout=10, what="ready again")
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
            assert b"eventfleet_consumer_processed_total" in metrics
            assert b"eventfleet_consumer_lag{" in metrics
    finally:
        proxy.stop()
    assert bench.stats() == in_both_stores(expected_stats(first + second))


def test_redis_unreachable_mid_run_postgres_goes_on_and_redis_is_rebuilt(
    bench: ConsumerBench,
) -> None:
    parts = urlsplit(bench.stack.redis_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 6379)).start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{proxy.port}"))
    topic = bench.topic(partitions=3)
    first = generate_events(2000, seed=31)
    during = generate_events(2000, seed=32)
    after = generate_events(300, seed=33, players=3)  # touches only a few players
    consumer = bench.consumer("stats", topic, redis_url=via_proxy, batch_size=100)
    try:
        with running(consumer):
            bench.produce(topic, first)
            bench.wait_processed(len(first), timeout=60, what="the first events")
            proxy.cut()
            bench.produce(topic, during)
            # PostgreSQL work goes on while Redis is away.
            bench.wait_processed(
                len(first) + len(during), timeout=60, what="the events sent while Redis is down"
            )
            assert counter(consumer.metrics.redis_errors) >= 1
            proxy.restore()
            bench.produce(topic, after)
            expected = expected_stats(first + during + after)

            def converged() -> bool:
                try:
                    return redis_stats(bench.redis) == expected
                except KeyError:  # read in the middle of a rebuild
                    return False

            wait_for(converged, timeout=60, what="Redis to be rebuilt from PostgreSQL")
    finally:
        proxy.stop()
    assert stored_stats(bench.dsn) == expected


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--mode", "stats", "--batch-size", "0"], "batch_size"),
        (["--mode", "nonsense"], "mode"),
        (["--mode", "logger", "--http-port", "99999"], "http_port"),
        (["--mode", "stats", "--redis-url", ""], "redis_url"),
    ],
)
def test_bad_configuration_names_the_setting_and_exits_non_zero(
    stack: Stack, args: list[str], named: str
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "EVENTFLEET_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "EVENTFLEET_POSTGRES_DSN": stack.postgres_dsn,
    }
    done = subprocess.run(
        [sys.executable, "-m", "eventfleet.cli", "consumer", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert named in done.stderr
    assert stack.postgres_dsn not in done.stderr  # settings errors never echo secrets
