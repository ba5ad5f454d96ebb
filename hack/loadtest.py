"""hack/loadtest TOTAL CONCURRENCY: realistic player events into a running gateway over HTTP.

The original design's `load_test_events.sh TOTAL CONCURRENCY` as a real tool. Many players in many
games play sessions: a login, matches (scores, kills, wins), level-ups that only go up,
achievements, purchases, a logout. TOTAL events are sent by CONCURRENCY connections, one event a
request (or --batch N events a request), with a progress line every second and at the end the
throughput, latency percentiles and every error by kind. Bounded: it stops after TOTAL events
or --max-seconds, whichever comes first. Exit status 1 when any request failed.

    hack/loadtest 100000 50
    hack/loadtest 1000000 16 --batch 100 --url http://127.0.0.1:8080 --api-key KEY
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

EVENT_WEIGHTS = {
    "match_completed": 50,
    "player_level_up": 10,
    "achievement_unlocked": 10,
    "purchase": 8,
    "player_login": 11,
    "player_logout": 11,
}
PLATFORMS = ("pc", "ps5", "xbox", "switch", "ios", "android")
CURRENCIES = ("EUR", "USD", "GBP", "JPY", "BRL")


@dataclass
class Player:
    player_id: str
    game_id: str
    level: int = 1
    session: str | None = None
    session_started: float = 0.0


class EventMaker:
    """Plausible events: a player logs in before playing, levels only go up, sessions end."""

    def __init__(self, players: int, games: int, seed: int) -> None:
        self.random = random.Random(seed)
        self.players = [
            Player(f"player-{number:07d}", f"game-{self.random.randrange(games):04d}")
            for number in range(players)
        ]
        self.types = list(EVENT_WEIGHTS)
        self.weights = list(EVENT_WEIGHTS.values())

    def event(self) -> dict[str, Any]:
        player = self.random.choice(self.players)
        kind = self.random.choices(self.types, self.weights)[0]
        now = time.time()
        if player.session is None and kind != "player_login":
            kind = "player_login"
        elif player.session is not None and kind == "player_login":
            kind = "match_completed"
        data: dict[str, Any]
        if kind == "player_login":
            player.session = f"s-{self.random.getrandbits(48):012x}"
            player.session_started = now
            data = {"platform": self.random.choice(PLATFORMS), "session_id": player.session}
        elif kind == "player_logout":
            data = {"session_seconds": max(1, int(now - player.session_started))}
            player.session = None
        elif kind == "player_level_up":
            player.level += 1
            data = {"level": player.level}
        elif kind == "match_completed":
            kills = self.random.randint(0, 25)
            data = {
                "score": self.random.randint(0, 5000) + 50 * kills,
                "won": self.random.random() < 0.48,
                "kills": kills,
                "deaths": self.random.randint(0, 20),
                "duration_seconds": self.random.randint(120, 1800),
            }
        elif kind == "achievement_unlocked":
            data = {"achievement_id": f"ach-{self.random.randint(1, 300):03d}"}
        else:
            cents = self.random.choice((99, 199, 499, 999, 1999, 4999))
            data = {"amount": f"{cents / 100:.2f}", "currency": self.random.choice(CURRENCIES)}
        return {
            "event_type": kind,
            "player_id": player.player_id,
            "game_id": player.game_id,
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "data": data,
        }


@dataclass
class Tally:
    requests: int = 0
    events_sent: int = 0
    events_accepted: int = 0
    events_rejected: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def answered(self, count: int, status: int, reply: bytes, seconds: float) -> None:
        self.latencies.append(seconds)
        self.requests += 1
        self.events_sent += count
        if status == 202:
            accepted = json.loads(reply).get("accepted", count)
            self.events_accepted += accepted
            self.events_rejected += count - accepted
        else:
            self.errors[f"HTTP {status}"] += 1
            if status == 400:
                self.events_rejected += count


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def send_all(options: argparse.Namespace, tally: Tally) -> float:
    maker = EventMaker(options.players, options.games, options.seed)
    per_request = max(1, options.batch)
    path = "/api/v1/events/batch" if options.batch else "/api/v1/events"
    url = options.url.rstrip("/") + path
    headers = {"content-type": "application/json"}
    if options.api_key:
        headers["x-api-key"] = options.api_key
    remaining = options.total
    deadline = time.monotonic() + options.max_seconds
    timeout = aiohttp.ClientTimeout(total=options.timeout)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < deadline:
            count = min(per_request, remaining)
            remaining -= count
            events = [maker.event() for _ in range(count)]
            body = json.dumps(events if options.batch else events[0]).encode()
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    reply = await answer.read()
                    status = answer.status
            except TimeoutError:
                tally.errors["timeout"] += 1
                tally.events_sent += count
                continue
            except aiohttp.ClientError as error:
                tally.errors[f"connection: {type(error).__name__}"] += 1
                tally.events_sent += count
                await asyncio.sleep(0.05)  # do not spin on a gateway that is down
                continue
            tally.answered(count, status, reply, time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=options.concurrency, force_close=False)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        progress = asyncio.create_task(report_progress(options, tally, started))
        await asyncio.gather(*(worker(session) for _ in range(options.concurrency)))
        progress.cancel()
    if remaining > 0:
        print(f"stopped by --max-seconds {options.max_seconds}: {remaining:,} events not sent")
    return time.monotonic() - started


async def report_progress(options: argparse.Namespace, tally: Tally, started: float) -> None:
    last_events, last_time = 0, started
    while True:
        await asyncio.sleep(1)
        now = time.monotonic()
        rate = (tally.events_sent - last_events) / (now - last_time)
        last_events, last_time = tally.events_sent, now
        done = tally.events_sent / options.total
        print(
            f"  {now - started:6.1f}s  {tally.events_sent:>10,}/{options.total:,} events "
            f"({done:4.0%})  {rate:9,.0f} events/s  errors {sum(tally.errors.values()):,}",
            flush=True,
        )


def report(options: argparse.Namespace, tally: Tally, seconds: float) -> None:
    latencies = sorted(tally.latencies)
    errors = sum(tally.errors.values())
    shape = f"batches of {options.batch}" if options.batch else "one event a request"
    print(f"\n{options.url}: {options.total:,} events, {options.concurrency} connections, {shape}")
    print(f"  duration         {seconds:10.2f} s")
    print(f"  requests         {tally.requests:10,}   {tally.requests / seconds:10,.0f} req/s")
    rate = tally.events_sent / seconds
    print(f"  events sent      {tally.events_sent:10,}   {rate:10,.0f} events/s")
    print(f"  events accepted  {tally.events_accepted:10,}")
    print(f"  events rejected  {tally.events_rejected:10,}   (invalid: 400 or listed in a batch)")
    print(
        "  latency          "
        + "   ".join(
            f"{label} {percentile(latencies, q) * 1000:.1f} ms"
            for label, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999))
        )
        + f"   max {latencies[-1] * 1000 if latencies else float('nan'):.1f} ms"
    )
    print(f"  errors           {errors:10,}   ({errors / max(1, tally.requests + errors):.2%})")
    for kind, count in tally.errors.most_common():
        print(f"    {kind:30s} {count:,}")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="hack/loadtest", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("total", type=int, help="events to send")
    parser.add_argument("concurrency", type=int, help="connections sending at once")
    parser.add_argument(
        "--url",
        default=os.environ.get("EVENTFLEET_GATEWAY_URL", "http://127.0.0.1:8080"),
        help="the gateway (env EVENTFLEET_GATEWAY_URL; default %(default)s)",
    )
    parser.add_argument("--batch", type=int, default=0, help="events a request (batch endpoint)")
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--games", type=int, default=50)
    parser.add_argument("--api-key", default=os.environ.get("EVENTFLEET_GATEWAY_API_KEY"))
    parser.add_argument("--max-seconds", type=float, default=600, help="stop after this long")
    parser.add_argument("--timeout", type=float, default=30, help="seconds a request may take")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    if options.total < 1 or not 1 <= options.concurrency <= 10_000:
        parser.error("TOTAL must be >= 1 and CONCURRENCY 1-10000")
    if options.batch < 0 or options.players < 1 or options.games < 1:
        parser.error("--batch must be >= 0, --players and --games >= 1")
    tally = Tally()
    seconds = asyncio.run(send_all(options, tally))
    report(options, tally, seconds)
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
