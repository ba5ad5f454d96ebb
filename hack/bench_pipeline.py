"""Whole-pipeline benchmark: HTTP -> gateway -> Kafka -> logger, stats and leaderboard consumers ->
PostgreSQL, on the deployment `make demo` leaves running (namespace gamemetrics, gateway on
127.0.0.1:18080). Prints numbers beside baselines measured in the same run:

1. latency floor: a bare Kafka produce -> consume round trip (no gateway, no database);
2. steady 1,000 events/s for 20 s: latency from the gateway's accept (the time inside the UUIDv7
   event id it assigns) to the row in PostgreSQL (events.stored_at), p50/p99;
3. peak: batch POSTs as fast as the load generator goes; the gateway's accept rate, and the
   pipeline's rate: events until every one of the three consumer groups has committed all of
   them (lag back to 0, read from the consumers' own offsets table).

Steps 2 and 3 run with each mode pinned to `--replicas` replicas (default 1): on one 2-core
machine that also runs every server, more consumer processes add no CPU, only rebalances and
per-batch overhead. A second peak then runs with the samples' autoscaling restored, for
comparison (scale-ups mid-burst: each one is a rebalance). Each phase of step 3 prints the
machine speed reference (hack/machine_speed.py) taken just before it: the host's speed moves
within minutes, and every rate here with it.

    make demo && make bench-pipeline            (or: python hack/bench_pipeline.py --peak 200000)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import machine_speed
import orjson
import psycopg2
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from demo_cluster import DATABASE, NAMESPACE, TOPIC, kubectl, wait
from fleetstack.kafka import Kafka

REPO = Path(__file__).resolve().parent.parent
P99_TARGET_MS = 50.0
PEAK_TARGET = 10_000.0
MODES = ("logger", "stats", "leaderboard")
DRAIN_TARGET_SECONDS = 5.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def kafka_floor(bootstrap: str, count: int = 2000) -> list[float]:
    """Produce -> consume on a scratch topic: the latency no pipeline on this Kafka can beat."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"bench.floor.{uuid.uuid4().hex[:8]}"

    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": topic,
            "auto.offset.reset": "latest",
            "fetch.wait.max.ms": 5,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    latencies = []
    try:
        for _ in range(count):
            sent = time.perf_counter()
            producer.produce(topic, b"x")
            producer.flush(5)
            while True:
                message = consumer.poll(5)
                if message is not None and message.error() is None:
                    break
            latencies.append(time.perf_counter() - sent)
    finally:
        consumer.close()
        admin.delete_topics([topic])[topic].result(30)
    return latencies


def event(game: str, index: int, stamp: str | None = None) -> dict[str, Any]:
    """Matches, logins and level-ups in turn, for 5,000 players."""
    kind: str
    data: dict[str, Any]
    if index % 3 == 0:
        kind = "match_completed"
        data = {
            "score": index % 977,
            "won": index % 2 == 0,
            "kills": index % 13,
            "deaths": index % 7,
        }
    elif index % 3 == 1:
        kind, data = "player_login", {"platform": "pc"}
    else:
        kind, data = "player_level_up", {"level": 1 + index % 90}
    return {
        "event_type": kind,
        "player_id": f"bench-{index % 5000}",
        "game_id": game,
        "timestamp": stamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": data,
    }


def batch_body(game: str, start: int, stop: int) -> bytes:
    """A batch POST's body (events `start` to `stop`), encoded by orjson."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return orjson.dumps([event(game, i, stamp) for i in range(start, stop)])


def batch_bodies(game: str, total: int, batch: int) -> list[bytes]:
    """Every body of a run, encoded before it starts: the load generator shares the two cores
    with the pipeline it measures, so it builds nothing while the clock runs."""
    return [batch_body(game, start, min(start + batch, total)) for start in range(0, total, batch)]


def steady_bodies(game: str, rate: int, seconds: int, batch: int = 10) -> list[bytes]:
    """The bodies of `seconds` at `rate` events/s in batches of `batch`."""
    return batch_bodies(game, rate * seconds // batch * batch, batch)


async def steady(url: str, bodies: list[bytes], rate: int, batch: int = 10) -> int:
    """`bodies` (of `batch` events each) at `rate` events/s, paced on a fixed schedule; returns
    events accepted."""
    accepted = 0
    interval = batch / rate
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        pending: set[asyncio.Task[int]] = set()
        for tick, body in enumerate(bodies):
            delay = started + tick * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.add(asyncio.create_task(post(session, url, body)))
            done = {t for t in pending if t.done()}
            accepted += sum(t.result() for t in done)
            pending -= done
        accepted += sum(await asyncio.gather(*pending))
    return accepted


REFUSALS: Counter[str] = Counter()


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> int:
    async with session.post(
        f"{url}/api/v1/events/batch", data=body, headers={"content-type": "application/json"}
    ) as answer:
        if answer.status != 202:
            REFUSALS[f"HTTP {answer.status}: {(await answer.text())[:120]}"] += 1
            return 0
        reply = orjson.loads(await answer.read())
        return int(reply["accepted"])


async def peak(url: str, all_bodies: list[bytes], concurrency: int) -> int:
    accepted = 0
    bodies = iter(all_bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal accepted
            for body in bodies:  # shared: each body goes to one worker
                got = await post(session, url, body)  # not `accepted += await`: a lost update
                accepted += got

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted


def latencies_ms(dsn: str, game: str) -> list[float]:
    """stored_at minus the accept time inside each UUIDv7 event id (milliseconds)."""
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_id::text, extract(epoch FROM stored_at) FROM events WHERE game_id = %s",
            (game,),
        )
        found = cursor.fetchall()
    connection.close()
    values = []
    for event_id, stored in found:
        accepted_ms = int(event_id.replace("-", "")[:12], 16)
        values.append(float(stored) * 1000 - accepted_ms)
    return values


def end_offsets(bootstrap: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    try:
        metadata = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
            for p in metadata.partitions
        }
    finally:
        consumer.close()


def committed_offsets(dsn: str) -> dict[tuple[str, int], int]:
    """(sink, partition) -> next offset, from the consumers' own offsets table (a sink is a
    mode's tables in the database)."""
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT sink, kafka_partition, next_offset FROM sink_offsets WHERE topic = %s",
            (TOPIC,),
        )
        committed = {(str(g), int(p)): int(o) for g, p, o in cursor.fetchall()}
    connection.close()
    return committed


def caught_up(dsn: str, ends: dict[int, int]) -> bool:
    committed = committed_offsets(dsn)
    return all(committed.get((g, p), -1) >= end for g in MODES for p, end in ends.items())


# A JVM that just started spends its first minutes compiling: right after `hack/stack up`
# started Kafka afresh, the broker's CPU per event was three times its later value, and a
# bench-pipeline run then read 5,800 events/s where the next one read 11,800.
KAFKA_WARM_SECONDS: Final = 600


def kafka_uptime_seconds() -> float | None:
    """How long the stack's Kafka has run (None when it is not the stack's own broker)."""
    owned = Kafka().owned()
    if owned is None or not owned.alive():
        return None
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - owned.start_ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:18080")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--peak", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument(
        "--sustained",
        type=int,
        default=int(PEAK_TARGET),
        help="events/s of the sustained run (above the target: how much headroom there is)",
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="replicas per mode for the pinned runs"
    )
    args = parser.parse_args()
    bootstrap = os.environ["EVENTFLEET_KAFKA_BOOTSTRAP"]
    parts = urlsplit(os.environ["EVENTFLEET_POSTGRES_DSN"])
    dsn = urlunsplit(parts._replace(path=f"/{DATABASE}"))
    if not gateway_ready(args.url):
        print(f"no ready gateway at {args.url}: run `make demo` first", file=sys.stderr)
        return 1
    run = uuid.uuid4().hex[:6]
    print(machine_speed.describe())
    kafka_age = kafka_uptime_seconds()
    if kafka_age is not None and kafka_age < KAFKA_WARM_SECONDS:
        print(
            f"note: Kafka started {kafka_age:.0f} s ago; its JVM is still compiling, and a run "
            f"this early reads low (run again after {KAFKA_WARM_SECONDS // 60} minutes)"
        )
    samples = {name: consumer_replicas(name) for name in MODES}
    tune_for_latency()
    pin_replicas({name: {"min": args.replicas, "max": args.replicas} for name in MODES})
    print(f"each mode pinned to {args.replicas} replica(s) for the latency and the first peak\n")

    floor = kafka_floor(bootstrap)
    print("latency (ms)                                   p50      p99")
    print(
        f"  Kafka produce -> consume (floor)         {percentile(floor, 0.5) * 1000:8.1f} "
        f"{percentile(floor, 0.99) * 1000:8.1f}"
    )

    # Warm-up, not measured: restarted consumers join their groups and settle.
    asyncio.run(steady(args.url, steady_bodies(f"bench-warmup-{run}", args.rate, 5), args.rate))
    game = f"bench-steady-{run}"
    bodies = steady_bodies(game, args.rate, args.seconds)
    accepted = asyncio.run(steady(args.url, bodies, args.rate))
    ends = end_offsets(bootstrap)
    wait("the pipeline to catch up", lambda: caught_up(dsn, ends), 120, interval=0.2)
    values = latencies_ms(dsn, game)
    p99 = percentile(values, 0.99)
    print(
        f"  gateway accept -> row in PostgreSQL     {percentile(values, 0.5):8.1f} {p99:8.1f}"
        f"   at {args.rate:,} events/s, {accepted:,} events, {len(values):,} rows "
        f"(target p99 < {P99_TARGET_MS:.0f} ms: {'yes' if p99 < P99_TARGET_MS else 'NO'})"
    )

    print(
        f"\npeak: {args.peak:,} events in batches of {args.batch}, {args.concurrency} connections"
    )
    measure_peak(args, dsn, f"bench-peak-{run}", f"{args.replicas} replica(s) per mode")
    measure_sustained(args, dsn, f"bench-sustained-{run}")
    pin_replicas(samples)
    measure_peak(args, dsn, f"bench-peak-scaled-{run}", "autoscaled as in the samples")
    print(machine_speed.describe())
    return 0


def measure_peak(args: argparse.Namespace, dsn: str, game: str, label: str) -> None:
    bootstrap = os.environ["EVENTFLEET_KAFKA_BOOTSTRAP"]
    bodies = batch_bodies(game, args.peak, args.batch)
    speed = machine_speed.reference_ms()  # the host's speed varies within minutes
    started = time.monotonic()
    accepted = asyncio.run(peak(args.url, bodies, args.concurrency))
    accept_seconds = time.monotonic() - started
    ends = end_offsets(bootstrap)
    wait("the pipeline to catch up", lambda: caught_up(dsn, ends), 600, interval=0.2)
    total_seconds = time.monotonic() - started
    pipeline = accepted / total_seconds
    print(f"  {label} (machine speed reference just before: {speed:.0f} ms):")
    print(
        f"    gateway accepted         {accepted / accept_seconds:10,.0f} events/s "
        f"({accept_seconds:.1f} s)"
    )
    print(
        f"    through all three modes  {pipeline:10,.0f} events/s ({total_seconds:.1f} s until "
        f"every group's lag was 0; target {PEAK_TARGET:,.0f}: "
        f"{'yes' if pipeline >= PEAK_TARGET else 'NO'})"
    )


def measure_sustained(args: argparse.Namespace, dsn: str, game: str) -> None:
    """The target rate (or `--sustained`) held for `--seconds` (batches of 100): does every
    mode keep up, and how long do events take to reach PostgreSQL at that rate?"""
    bootstrap = os.environ["EVENTFLEET_KAFKA_BOOTSTRAP"]
    rate = args.sustained
    bodies = steady_bodies(game, rate, args.seconds, batch=100)
    speed = machine_speed.reference_ms()
    started = time.monotonic()
    accepted = asyncio.run(steady(args.url, bodies, rate, batch=100))
    sending = time.monotonic() - started
    ends = end_offsets(bootstrap)
    behind = backlog(dsn, ends)
    wait("the pipeline to catch up", lambda: caught_up(dsn, ends), 600, interval=0.2)
    drained = time.monotonic() - started - sending
    kept_up = accepted >= 0.99 * rate * args.seconds and drained < DRAIN_TARGET_SECONDS
    print(
        f"  sustained {rate:,} events/s for {args.seconds} s, {args.replicas} replica(s) per mode "
        f"(machine speed reference just before: {speed:.0f} ms):"
    )
    print(
        f"    gateway accepted         {accepted / sending:10,.0f} events/s "
        f"({accepted:,} events in {sending:.1f} s)"
    )
    print(
        f"    backlog when it ended    {behind:10,} events (the most behind group), drained in "
        f"{drained:.1f} s (target: kept up, drained within {DRAIN_TARGET_SECONDS:.0f} s: "
        f"{'yes' if kept_up else 'NO'})"
    )
    values = latencies_ms(dsn, game)
    print(
        f"    accept -> row in PostgreSQL  p50 {percentile(values, 0.5):,.1f} ms, "
        f"p99 {percentile(values, 0.99):,.1f} ms ({len(values):,} rows; a backlog waits in it)"
    )


def backlog(dsn: str, ends: dict[int, int]) -> int:
    """Events the most-behind group still has to process."""
    committed = committed_offsets(dsn)
    return max(
        sum(max(end - committed.get((g, p), 0), 0) for p, end in ends.items()) for g in MODES
    )


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-n", NAMESPACE, "-o", "json"))


def consumer_replicas(name: str) -> dict[str, int]:
    replicas: dict[str, int] = kubectl_json("get", "ec", name)["spec"]["replicas"]
    return replicas


def pin_replicas(replicas: dict[str, dict[str, int]]) -> None:
    """Set each EventConsumer's replicas range, then wait until its Deployment runs exactly the
    range's minimum, all ready (at lag 0 the autoscaler settles there)."""
    for name, wanted in replicas.items():
        patch = json.dumps({"spec": {"replicas": wanted}})
        kubectl("patch", "ec", name, "-n", NAMESPACE, "--type=merge", "-p", patch)

    def settled() -> bool:
        for name, wanted in replicas.items():
            deployment = kubectl_json("get", "deploy", f"{name}-consumer")
            status = deployment.get("status", {})
            counts = (
                deployment["spec"]["replicas"],
                status.get("replicas") or 0,
                status.get("readyReplicas") or 0,
            )
            if counts != (wanted["min"],) * 3:
                return False
        return True

    wait("each Deployment to run its pinned replicas, all ready", settled, 180, interval=0.2)
    time.sleep(3)  # the remaining consumers take over the partitions of the stopped ones


def tune_for_latency() -> None:
    """The demo tunes its EventConsumers to scale at the slightest backlog; a steady 1,000
    events/s would then trigger rebalances mid-measurement. Measure with the production
    default's order of magnitude (lagPerReplica 5,000) and short consumer batches (20 ms), and
    wait until the consumers restarted with them."""
    patch = json.dumps(
        {"spec": {"processing": {"batchTimeoutMs": 20}, "autoscaling": {"lagPerReplica": 5000}}}
    )
    for name in MODES:
        kubectl("patch", "ec", name, "-n", NAMESPACE, "--type=merge", "-p", patch)

    def settled() -> bool:
        found = kubectl_json("get", "deploy")["items"]

        def tuned(deployment: dict[str, Any]) -> bool:
            env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            return {"name": "EVENTFLEET_BATCH_TIMEOUT_MS", "value": "20"} in env

        def ready(deployment: dict[str, Any]) -> bool:
            wanted = deployment["spec"]["replicas"]
            return bool((deployment.get("status", {}).get("readyReplicas") or 0) == wanted)

        return len(found) == 3 and all(tuned(d) and ready(d) for d in found)

    wait("the consumers to restart with the latency settings", settled, 120, interval=0.2)
    time.sleep(3)  # the restarted consumers join their groups


def gateway_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=3) as answer:  # noqa: S310 - loopback
            return bool(answer.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
