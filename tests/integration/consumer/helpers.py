"""Shared pieces of the consumer's integration tests: a deterministic event generator, producing,
running a consumer in a thread or a subprocess, and reading back what it stored."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
from confluent_kafka import Producer

from eventfleet.consumer.runtime import Consumer
from eventfleet.consumer.settings import ConsumerSettings
from tests.fixtures.waiting import wait_for

REPO = Path(__file__).resolve().parents[3]
# The consumer tests own Redis db 12 (tests run one at a time; other suites use db 15).
CONSUMER_REDIS_DB = 12


def generate_events(
    count: int, *, seed: int = 7, players: int = 40, games: int = 2, days: int = 3
) -> list[dict[str, Any]]:
    """A reproducible mix of every known type, an unknown type, events with and without ids,
    spread over the last `days` days (so daily and weekly periods differ)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    now = datetime.now(UTC).replace(microsecond=0)
    events = []
    for n in range(count):
        kind = rng.choices(
            [
                "match_completed",
                "player_login",
                "player_logout",
                "player_level_up",
                "achievement_unlocked",
                "purchase",
                "guild_joined",
            ],
            weights=[40, 15, 10, 10, 8, 10, 7],
        )[0]
        data: dict[str, Any]
        if kind == "match_completed":
            data = {"score": rng.randint(0, 5000), "won": rng.random() < 0.4}
            if rng.random() < 0.8:
                data["kills"] = rng.randint(0, 30)
                data["deaths"] = rng.randint(0, 30)
        elif kind == "player_login":
            data = {"platform": rng.choice(["pc", "ps5", "ios"])}
        elif kind == "player_logout":
            data = {"session_seconds": rng.randint(1, 9000)}
        elif kind == "player_level_up":
            data = {"level": rng.randint(1, 90)}
        elif kind == "achievement_unlocked":
            data = {"achievement_id": f"a{rng.randint(1, 50)}"}
        elif kind == "purchase":
            data = {"amount": f"{rng.randint(0, 9999)}.{rng.randint(0, 99):02d}", "currency": "EUR"}
        else:
            data = {"guild": f"g{rng.randint(1, 5)}"}
        when = now - timedelta(seconds=rng.randint(0, days * 86_400 - 1))
        event: dict[str, Any] = {
            "event_type": kind,
            "player_id": f"p{rng.randint(1, players)}",
            "game_id": f"game{rng.randint(1, games)}",
            "timestamp": when.isoformat().replace("+00:00", "Z"),
            "data": data,
        }
        if n % 10 != 0:  # every tenth event arrives without an id: the consumer derives one
            event["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        events.append(event)
    return events


def event_now(
    kind: str, player: str, *, game: str = "g", number: int | None = None, **data: Any
) -> dict[str, Any]:
    """One hand-made event of `kind` by `player`, stamped now; `number` gives it the event_id
    00000000-0000-4000-8000-<number>, so that a test knows (and may send again) its id."""
    made: dict[str, Any] = {
        "event_type": kind,
        "player_id": player,
        "game_id": game,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": data,
    }
    if number is not None:
        made["event_id"] = f"00000000-0000-4000-8000-{number:012d}"
    return made


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[str] | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for n, value in enumerate(values):
        key = keys[n] if keys else None
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(30) != 0:
        raise RuntimeError("not every test event reached Kafka")


def produce_events(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    produce(
        bootstrap,
        topic,
        [json.dumps(e).encode() for e in events],
        [e["player_id"] for e in events],
    )


def settings_for(
    mode: str, *, bootstrap: str, topic: str, group: str, dsn: str, redis_url: str, **extra: Any
) -> ConsumerSettings:
    values: dict[str, Any] = {
        "mode": mode,
        "kafka_bootstrap": bootstrap,
        "topic": topic,
        "consumer_group": group,
        "postgres_dsn": dsn,
        "redis_url": redis_url,
        "redis_stats_db": CONSUMER_REDIS_DB,
        "redis_leaderboard_db": CONSUMER_REDIS_DB,
        "http_port": 0,
        "batch_size": 500,
        "batch_timeout_ms": 50,
        "top_n": 1000,
        "max_backoff_seconds": 1.0,
    }
    values.update(extra)
    return ConsumerSettings.model_validate(values)


def processed_count(dsn: str) -> int:
    """How many records the sinks of a test's own database have finished (the sum of their
    stored next offsets)."""
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        try:
            cursor.execute(
                "SELECT coalesce(sum(next_offset), 0) FROM sink_offsets WHERE next_offset >= 0"
            )
        except psycopg2.errors.UndefinedTable:
            return 0
        row = cursor.fetchone()
    connection.close()
    return int(row[0]) if row else 0


@contextmanager
def running(consumer: Consumer) -> Iterator[Consumer]:
    """Run a consumer in a thread; stop it (finish batch, commit, close) when the block ends."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(consumer.run()), daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        consumer.stop.set()
        thread.join(60)
    if thread.is_alive():
        raise AssertionError("the consumer did not stop within 60 s")
    if result != [0]:
        raise AssertionError(f"the consumer exited with {result}")


def run_until_done(consumer: Consumer, expected: int, *, timeout: float = 90) -> None:
    settings = consumer.settings
    with running(consumer):
        wait_for(
            lambda: processed_count(settings.postgres_dsn) >= expected,
            timeout=timeout,
            what=f"{expected} records processed",
        )


def spawn(settings: ConsumerSettings, *, log: Path) -> subprocess.Popen[bytes]:
    """`eventfleet consumer` as a real process, configured through the environment."""
    env = {**os.environ}
    for name, value in settings.model_dump(exclude_none=True).items():
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        env["EVENTFLEET_" + name.upper()] = text
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "eventfleet.cli", "consumer"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


def counter(metric: Any) -> float:
    """The current value of an unlabelled prometheus_client Counter."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                return float(sample.value)
    return 0.0


def rows(dsn: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(query, args or None)
        found = cursor.fetchall()
    connection.close()
    return found


def http_answer(port: int, path: str) -> tuple[int, str]:
    """The status and body a consumer's HTTP server on 127.0.0.1:`port` answers for `path`
    (/healthz, /readyz, /metrics), error statuses included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def http_status(port: int, path: str) -> int:
    return http_answer(port, path)[0]
