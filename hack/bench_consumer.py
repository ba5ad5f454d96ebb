#!/usr/bin/env python3
"""Benchmark of the shared consumer on the local stack (`make bench-consumer`).

In one run, on one topic of 3 partitions holding N pre-produced events (default 200,000):

- ceiling: a raw confluent-kafka consume loop that does nothing with the records;
- baseline: a naive consumer like the original design's, one INSERT and one commit per event
  (time-bounded: measured on the events it gets through in --baseline-seconds);
- one `eventfleet consumer --mode M` process per mode, started on its own database: events/s
  from its first to its last committed batch, the ratios to ceiling and baseline, peak RSS;
- end-to-end latency at a steady 1,000 events/s per mode (p50/p99 from the consumer's latency
  histogram, interpolated within its buckets).

Loopback only, bounded in count and time. Never run by `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import machine_speed
import psycopg2
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from fleetstack.cli import environment
from fleetstack.ports import free_port
from fleetstack.processes import stop_child
from psycopg2 import sql

REPO = Path(__file__).resolve().parents[1]
FLOORS = {"logger": 30_000, "stats": 15_000, "leaderboard": 20_000}
RSS_LIMIT_MB = 200
LATENCY_BATCH_TIMEOUT_MS = 20
LATENCY_TARGET_P99 = 0.050
BENCH_REDIS_DB = {"stats": 13, "leaderboard": 14}
SEED_CLAIMS = {"logger": 5_000, "stats": 3_000, "leaderboard": 2_000}


@dataclass
class Row:
    name: str
    events: int
    seconds: float
    rss_mb: float | None = None
    cpu_seconds: float | None = None  # the consumer process's own CPU time over the run

    @property
    def per_cpu_second(self) -> float | None:
        if not self.cpu_seconds:
            return None
        return self.events / self.cpu_seconds

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def make_events(count: int, *, seed: int = 1, spread_hours: int = 48) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - reproducible load, not secrets
    now = datetime.now(UTC)
    kinds = [
        "match_completed", "player_login", "player_logout", "player_level_up",
        "achievement_unlocked", "purchase",
    ]  # fmt: skip
    for _ in range(count):
        kind = rng.choices(kinds, weights=[45, 15, 12, 10, 8, 10])[0]
        if kind == "match_completed":
            data: dict[str, Any] = {
                "score": rng.randint(0, 5000),
                "won": rng.random() < 0.4,
                "kills": rng.randint(0, 30),
                "deaths": rng.randint(0, 30),
                "duration_seconds": rng.randint(60, 3600),
            }
        elif kind == "player_login":
            data = {"platform": "pc", "session_id": uuid.UUID(int=rng.getrandbits(128)).hex}
        elif kind == "player_logout":
            data = {"session_seconds": rng.randint(1, 9000)}
        elif kind == "player_level_up":
            data = {"level": rng.randint(1, 90)}
        elif kind == "achievement_unlocked":
            data = {"achievement_id": f"ach_{rng.randint(1, 200)}"}
        else:
            data = {"amount": round(rng.uniform(0.99, 99.99), 2), "currency": "EUR"}
        when = now - timedelta(seconds=rng.uniform(0, spread_hours * 3600))
        yield {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_type": kind,
            "player_id": f"player_{rng.randint(1, 10_000)}",
            "game_id": f"game_{rng.randint(1, 5)}",
            "timestamp": when.isoformat().replace("+00:00", "Z"),
            "data": data,
        }


def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name
    ].result(30)


def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(names, operation_timeout=30).values():
        with suppress(Exception):
            future.result(30)


def produce_all(bootstrap: str, topic: str, count: int) -> float:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"}
    )
    started = time.perf_counter()
    for event in make_events(count):
        value = json.dumps(event).encode()
        while True:
            try:
                producer.produce(topic, value=value, key=event["player_id"])
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("events did not all reach Kafka")
    return time.perf_counter() - started


def ceiling(bootstrap: str, topic: str, count: int) -> Row:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-ceiling-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    started: float | None = None
    deadline = time.monotonic() + 120
    while seen < count and time.monotonic() < deadline:
        got = consumer.consume(1000, timeout=1.0)
        if got and started is None:
            started = time.perf_counter()
        seen += sum(1 for m in got if m.error() is None)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return Row("ceiling (raw consume loop)", seen, elapsed)


def baseline(bootstrap: str, topic: str, dsn: str, seconds: float) -> Row:
    """One INSERT and one commit per event, like the original design's consumers."""
    connection = psycopg2.connect(dsn)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE naive_events (event_id uuid PRIMARY KEY, event_type text, "
            "player_id text, game_id text, event_time timestamptz, data jsonb)"
        )
    connection.commit()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-naive-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    done = 0
    started: float | None = None
    while True:
        message = consumer.poll(1.0)
        if message is None or message.error() is not None:
            if started is not None and time.perf_counter() - started > seconds:
                break
            continue
        if started is None:
            started = time.perf_counter()
        event = json.loads(message.value() or b"{}")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO naive_events VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    event["event_id"],
                    event["event_type"],
                    event["player_id"],
                    event["game_id"],
                    event["timestamp"],
                    json.dumps(event["data"]),
                ),
            )
        connection.commit()
        done += 1
        if time.perf_counter() - started > seconds:
            break
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    connection.close()
    return Row("baseline (INSERT+commit per event)", done, elapsed)


@contextmanager
def scratch_database(admin_dsn: str, name: str) -> Iterator[str]:
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()


def flush_redis(url: str, db: int) -> None:
    client = redis.Redis.from_url(urlunsplit(urlsplit(url)._replace(path=f"/{db}")))
    client.flushdb()
    client.close()


def stored_progress(dsn: str, sink: str) -> int:
    """Records the sink (a mode's tables in its own database) has finished."""
    try:
        connection = psycopg2.connect(dsn)
    except psycopg2.Error:
        return 0
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(sum(next_offset), 0) FROM sink_offsets "
                "WHERE sink = %s AND next_offset >= 0",
                (sink,),
            )
            row = cursor.fetchone()
            return int(row[0]) if row else 0
    except psycopg2.Error:
        return 0
    finally:
        connection.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (what it used, whatever else the machine runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_consumer(
    mode: str,
    env: dict[str, str],
    *,
    topic: str,
    group: str,
    dsn: str,
    port: int,
    batch: int,
    batch_timeout_ms: int = 100,
) -> subprocess.Popen[bytes]:
    settings = {
        "EVENTFLEET_MODE": mode,
        "EVENTFLEET_KAFKA_BOOTSTRAP": env["EVENTFLEET_KAFKA_BOOTSTRAP"],
        "EVENTFLEET_TOPIC": topic,
        "EVENTFLEET_CONSUMER_GROUP": group,
        "EVENTFLEET_POSTGRES_DSN": dsn,
        "EVENTFLEET_REDIS_URL": env["EVENTFLEET_REDIS_URL"],
        "EVENTFLEET_REDIS_STATS_DB": str(BENCH_REDIS_DB["stats"]),
        "EVENTFLEET_REDIS_LEADERBOARD_DB": str(BENCH_REDIS_DB["leaderboard"]),
        "EVENTFLEET_HTTP_HOST": "127.0.0.1",
        "EVENTFLEET_HTTP_PORT": str(port),
        "EVENTFLEET_BATCH_SIZE": str(batch),
        "EVENTFLEET_BATCH_TIMEOUT_MS": str(batch_timeout_ms),
        "EVENTFLEET_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "eventfleet.cli", "consumer"],
        env={**os.environ, **settings},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run_mode(mode: str, env: dict[str, str], topic: str, count: int, batch: int) -> Row:
    name = f"bench_{mode}_{uuid.uuid4().hex[:8]}"
    group = f"bench-{mode}-{uuid.uuid4().hex[:8]}"
    if mode in BENCH_REDIS_DB:
        flush_redis(env["EVENTFLEET_REDIS_URL"], BENCH_REDIS_DB[mode])
    with scratch_database(env["EVENTFLEET_POSTGRES_DSN"], name) as dsn:
        process = start_consumer(
            mode, env, topic=topic, group=group, dsn=dsn, port=free_port(), batch=batch
        )
        try:
            first_at: float | None = None
            first_count = 0
            first_cpu = 0.0
            done = 0
            deadline = time.monotonic() + 300
            while done < count and time.monotonic() < deadline:
                if process.poll() is not None:
                    err = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"{mode} consumer exited: {err[-2000:]}")
                done = stored_progress(dsn, mode)
                now = time.perf_counter()
                if done and first_at is None:
                    first_at, first_count = now, done
                    first_cpu = cpu_seconds(process.pid)
                time.sleep(0.05)
            finished = time.perf_counter()
            rss = peak_rss_mb(process.pid)
            used = cpu_seconds(process.pid) - first_cpu
        finally:
            stop_child(process)
        if mode in BENCH_REDIS_DB:
            flush_redis(env["EVENTFLEET_REDIS_URL"], BENCH_REDIS_DB[mode])
    seconds = finished - (first_at or finished)
    return Row(f"eventfleet consumer --mode {mode}", done - first_count, seconds, rss, used)


def _buckets(text: str) -> dict[float, float]:
    name = "eventfleet_consumer_end_to_end_latency_seconds_bucket"
    found: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found[float("inf") if bound == "+Inf" else float(bound)] = float(line.split()[-1])
    return found


def histogram_quantiles(text: str, quantiles: tuple[float, ...], *, minus: str = "") -> list[float]:
    """Quantiles of the latency histogram in `text`, without what `minus` had counted."""
    earlier = _buckets(minus)
    buckets = sorted((b, c - earlier.get(b, 0.0)) for b, c in _buckets(text).items())
    total = buckets[-1][1] if buckets else 0
    found = []
    for q in quantiles:
        target = q * total
        previous_bound, previous_count = 0.0, 0.0
        value = float("nan")
        for bound, cumulative in buckets:
            if cumulative >= target:
                if bound == float("inf"):
                    value = previous_bound
                else:
                    share = (target - previous_count) / max(cumulative - previous_count, 1e-9)
                    value = previous_bound + (bound - previous_bound) * share
                break
            previous_bound, previous_count = bound, cumulative
        found.append(value)
    return found


def latency(mode: str, env: dict[str, str], rate: int, seconds: int) -> tuple[float, float, int]:
    bootstrap = env["EVENTFLEET_KAFKA_BOOTSTRAP"]
    topic = f"bench-latency-{mode}-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    name = f"bench_lat_{mode}_{uuid.uuid4().hex[:8]}"
    group = f"bench-lat-{uuid.uuid4().hex[:8]}"
    port = free_port()
    if mode in BENCH_REDIS_DB:
        flush_redis(env["EVENTFLEET_REDIS_URL"], BENCH_REDIS_DB[mode])
    try:
        with scratch_database(env["EVENTFLEET_POSTGRES_DSN"], name) as dsn:
            # A batch waits up to batchTimeoutMs for company: the latency run uses a short one,
            # as a deployment tuned for latency would (the default 100 ms favours throughput).
            process = start_consumer(
                mode,
                env,
                topic=topic,
                group=group,
                dsn=dsn,
                port=port,
                batch=1000,
                batch_timeout_ms=LATENCY_BATCH_TIMEOUT_MS,
            )
            try:
                wait_ready(port)
                producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
                # One warm-up event per partition, measured out once stored: the group has
                # joined and the partitions are assigned before the paced run starts.
                warm = list(make_events(3, seed=6, spread_hours=0))
                for partition, event in enumerate(warm):
                    event["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                    producer.produce(topic, value=json.dumps(event).encode(), partition=partition)
                producer.flush(30)
                deadline = time.monotonic() + 60
                while stored_progress(dsn, mode) < len(warm) and time.monotonic() < deadline:
                    time.sleep(0.05)
                before = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                warm_text = before.read().decode()
                template = make_events(rate * seconds, seed=5, spread_hours=0)
                started = time.perf_counter()
                for n, event in enumerate(template):
                    due = started + n / rate
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    event["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                    producer.produce(
                        topic, value=json.dumps(event).encode(), key=event["player_id"]
                    )
                    producer.poll(0)
                producer.flush(30)
                deadline = time.monotonic() + 30
                expected = rate * seconds + len(warm)
                while stored_progress(dsn, mode) < expected and time.monotonic() < deadline:
                    time.sleep(0.1)
                text = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    .read()
                    .decode()
                )
            finally:
                stop_child(process)
    finally:
        delete_topics(bootstrap, [topic])
        if mode in BENCH_REDIS_DB:
            flush_redis(env["EVENTFLEET_REDIS_URL"], BENCH_REDIS_DB[mode])
    p50, p99 = histogram_quantiles(text, (0.5, 0.99), minus=warm_text)
    return p50, p99, rate * seconds


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:{port}/readyz"
        with suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("the consumer did not become ready")


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def machine_context() -> str:
    return f"load average {load_average()} on {os.cpu_count()} CPUs; {machine_speed.describe()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--modes", default="logger,stats,leaderboard")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--latency-seconds", type=int, default=10)
    parser.add_argument("--latency-rate", type=int, default=1000)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]

    env = environment(
        ("EVENTFLEET_KAFKA_BOOTSTRAP", "EVENTFLEET_POSTGRES_DSN", "EVENTFLEET_REDIS_URL")
    )
    print(f"before: {machine_context()}")
    bootstrap = env["EVENTFLEET_KAFKA_BOOTSTRAP"]
    topic = f"bench-consumer-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    results: list[Row] = []
    try:
        print(f"producing {args.events:,} events into {topic} (3 partitions) ...", flush=True)
        produced = produce_all(bootstrap, topic, args.events)
        print(f"  produced in {produced:.1f}s", flush=True)
        top = ceiling(bootstrap, topic, args.events)
        print(f"  ceiling: {top.rate:,.0f}/s", flush=True)
        with scratch_database(
            env["EVENTFLEET_POSTGRES_DSN"], f"bench_naive_{uuid.uuid4().hex[:8]}"
        ) as dsn:
            base = baseline(bootstrap, topic, dsn, args.baseline_seconds)
        print(f"  baseline: {base.rate:,.0f}/s on {base.events:,} events", flush=True)
        for mode in modes:
            row = run_mode(mode, env, topic, args.events, args.batch_size)
            results.append(row)
            print(f"  {mode}: {row.rate:,.0f}/s", flush=True)
    finally:
        delete_topics(bootstrap, [topic])

    print()
    print(f"{'':38} {'events':>8} {'seconds':>8} {'events/s':>10} {'ceiling':>8} "
          f"{'baseline':>9} {'RSS MB':>7} {'/CPU-s':>8} {'floor':>7}  ok")  # fmt: skip
    ok = True
    for row in [top, base, *results]:
        mode = row.name.rsplit(" ", 1)[-1]
        floor = FLOORS.get(mode)
        passed = floor is None or (
            row.rate >= floor and (row.rss_mb is None or row.rss_mb < RSS_LIMIT_MB)
        )
        ok = ok and passed
        print(
            f"{row.name:38} {row.events:8,} {row.seconds:8.2f} {row.rate:10,.0f} "
            f"{row.rate / top.rate:8.2f} {row.rate / base.rate:8.1f}x "
            f"{row.rss_mb if row.rss_mb is not None else float('nan'):7.0f} "
            f"{row.per_cpu_second or float('nan'):8,.0f} "
            f"{floor if floor else '':>7}  {'yes' if passed else 'NO' if floor else ''}"
        )
    print(f"(original design's claims: {SEED_CLAIMS}; RSS limit {RSS_LIMIT_MB} MB per process;")
    print(" /CPU-s: events per second of the consumer process's own CPU time)")
    print(f"after: {machine_context()} (other work on the machine shares the CPUs)")

    if not args.skip_latency:
        print()
        print(
            f"end-to-end latency at {args.latency_rate:,} events/s for {args.latency_seconds}s "
            "(event timestamp to batch commit; p50/p99 interpolated in histogram buckets;"
            f" batchTimeoutMs {LATENCY_BATCH_TIMEOUT_MS})"
        )
        for mode in modes:
            p50, p99, sent = latency(mode, env, args.latency_rate, args.latency_seconds)
            good = p99 < LATENCY_TARGET_P99
            ok = ok and good
            target = f"target p99 < {LATENCY_TARGET_P99 * 1000:.0f} ms: {'yes' if good else 'NO'}"
            print(
                f"  {mode:12} events {sent:6,}  p50 {p50 * 1000:6.1f} ms  "
                f"p99 {p99 * 1000:6.1f} ms  ({target})"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
