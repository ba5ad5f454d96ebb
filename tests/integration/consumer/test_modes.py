"""stats and leaderboard modes on the real stack: PostgreSQL and Redis hold exactly what an
independent computation over the produced events says, also after Redis is flushed mid-run and
with two consumers sharing the partitions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import redis
from eventfleet.consumer.runtime import Consumer

from tests.fixtures.stack import Stack
from tests.integration.consumer.helpers import (
    counter,
    generate_events,
    processed_count,
    produce_events,
    rows,
    run_until_done,
    running,
    settings_for,
    wait_for,
)

pytestmark = pytest.mark.integration

STATS_FIELDS = (
    "total_events", "logins", "logouts", "level_ups", "matches_played", "achievements",
    "purchases", "wins", "total_score", "high_score", "kills", "deaths", "max_level",
    "total_spent", "other_events", "first_seen", "last_seen",
)  # fmt: skip
TYPE_FIELD = {
    "player_login": "logins",
    "player_logout": "logouts",
    "player_level_up": "level_ups",
    "match_completed": "matches_played",
    "achievement_unlocked": "achievements",
    "purchase": "purchases",
}


def when(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"])


def expected_stats(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        row = found.setdefault(
            (event["game_id"], event["player_id"]),
            dict.fromkeys(STATS_FIELDS, 0)
            | {
                "total_spent": Decimal(0),
                "other_events": {},
                "first_seen": when(event),
                "last_seen": when(event),
            },
        )
        data = event["data"]
        row["total_events"] += 1
        row["first_seen"] = min(row["first_seen"], when(event))
        row["last_seen"] = max(row["last_seen"], when(event))
        kind = event["event_type"]
        if kind in TYPE_FIELD:
            row[TYPE_FIELD[kind]] += 1
        else:
            row["other_events"][kind] = row["other_events"].get(kind, 0) + 1
        if kind == "match_completed":
            row["total_score"] += data["score"]
            row["high_score"] = max(row["high_score"], data["score"])
            row["wins"] += int(data["won"])
            row["kills"] += data.get("kills", 0)
            row["deaths"] += data.get("deaths", 0)
        elif kind == "player_level_up":
            row["max_level"] = max(row["max_level"], data["level"])
        elif kind == "purchase":
            row["total_spent"] += Decimal(data["amount"])
    return found


def stored_stats(dsn: str) -> dict[tuple[str, str], dict[str, Any]]:
    columns = ", ".join(STATS_FIELDS)
    found = {}
    for row in rows(dsn, f"SELECT game_id, player_id, {columns} FROM player_statistics"):  # noqa: S608
        found[(row[0], row[1])] = dict(zip(STATS_FIELDS, row[2:], strict=True))
    return found


def redis_stats(client: redis.Redis) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for key in client.scan_iter(match="player_stats:*"):
        _, game_id, player_id = str(key).split(":")
        values = client.hgetall(key)
        row: dict[str, Any] = {}
        for name in STATS_FIELDS:
            text = str(values[name])
            if name == "total_spent":
                row[name] = Decimal(text)
            elif name in ("first_seen", "last_seen"):
                row[name] = datetime.fromisoformat(text)
            elif name == "other_events":
                row[name] = json.loads(text)
            else:
                row[name] = int(text)
        found[(game_id, player_id)] = row
    return found


def test_stats_exact_in_postgres_and_redis_and_repaired_after_a_flush(
    stack: Stack,
    create_topic: Callable[..., str],
    consumer_group: str,
    postgres_dsn: str,
    consumer_redis: redis.Redis,
) -> None:
    topic = create_topic(partitions=3)
    first = generate_events(4000, seed=1)
    produce_events(stack.kafka_bootstrap, topic, first)
    settings = settings_for(
        "stats",
        bootstrap=stack.kafka_bootstrap,
        topic=topic,
        group=consumer_group,
        dsn=postgres_dsn,
        redis_url=stack.redis_url,
        batch_size=200,
    )
    consumer = Consumer(settings)
    with running(consumer):
        wait_for(
            lambda: processed_count(postgres_dsn, consumer_group) >= len(first),
            timeout=90,
            what="the first events",
        )
        assert stored_stats(postgres_dsn) == expected_stats(first)
        assert redis_stats(consumer_redis) == expected_stats(first)

        consumer_redis.flushdb()  # Redis lost everything (restart without persistence, FLUSHDB)
        second = generate_events(1000, seed=2)
        produce_events(stack.kafka_bootstrap, topic, second)
        wait_for(
            lambda: processed_count(postgres_dsn, consumer_group) >= len(first) + len(second),
            timeout=90,
            what="the second events",
        )
    everything = expected_stats(first + second)
    assert stored_stats(postgres_dsn) == everything
    assert redis_stats(consumer_redis) == everything  # rebuilt from PostgreSQL, not just patched
    assert counter(consumer.metrics.redis_resyncs) >= 2  # the first start, then the flush


# ----------------------------------------------------------------------------- leaderboards


def expected_boards(events: list[dict[str, Any]]) -> dict[tuple[str, ...], int]:
    found: dict[tuple[str, ...], int] = {}
    for event in events:
        kind, data = event["event_type"], event["data"]
        parts: list[tuple[str, int, bool]] = []  # board, value, additive
        if kind == "match_completed":
            parts = [("total_score", data["score"], True), ("high_score", data["score"], False)]
            if data["won"]:
                parts.append(("wins", 1, True))
        elif kind == "player_level_up":
            parts = [("level", data["level"], False)]
        day = when(event).date()
        iso = day.isocalendar()
        periods = [
            ("all_time", "all_time"),
            ("daily", day.isoformat()),
            ("weekly", f"{iso.year}-W{iso.week:02d}"),
        ]
        for board, value, additive in parts:
            for period, key in periods:
                slot = (event["game_id"], board, period, key, event["player_id"])
                old = found.get(slot)
                if old is None:
                    found[slot] = value
                else:
                    found[slot] = old + value if additive else max(old, value)
    return found


def stored_boards(dsn: str) -> dict[tuple[str, ...], int]:
    """The leaderboards table as (game, board, period, key, player) -> score, for the boards
    each player has entered."""
    found: dict[tuple[str, ...], int] = {}
    bits = {"total_score": 1, "high_score": 2, "level": 4, "wins": 8}
    query = (
        "SELECT game_id, period, period_key, player_id, total_score, high_score, level, wins, "
        "boards FROM leaderboards"
    )
    for game_id, period, key, player, total, high, level, wins, entered in rows(dsn, query):
        values = {"total_score": total, "high_score": high, "level": level, "wins": wins}
        for board, bit in bits.items():
            if entered & bit:
                found[(game_id, board, period, key, player)] = int(values[board])
    return found


def redis_boards(client: redis.Redis) -> dict[tuple[str, ...], int]:
    found: dict[tuple[str, ...], int] = {}
    for key in client.scan_iter(match="leaderboard:*"):
        parts = str(key).split(":")
        game_id, board, period = parts[1], parts[2], parts[3]
        period_key = parts[4] if period != "all_time" else "all_time"
        for entry in client.zrange(key, 0, -1, withscores=True):
            found[(game_id, board, period, period_key, str(entry[0]))] = int(entry[1])
    return found


def test_leaderboards_exact_with_two_consumers_splitting_the_partitions(
    stack: Stack,
    create_topic: Callable[..., str],
    consumer_group: str,
    postgres_dsn: str,
    consumer_redis: redis.Redis,
) -> None:
    topic = create_topic(partitions=4)
    events = generate_events(6000, seed=3, players=60)
    settings = settings_for(
        "leaderboard",
        bootstrap=stack.kafka_bootstrap,
        topic=topic,
        group=consumer_group,
        dsn=postgres_dsn,
        redis_url=stack.redis_url,
        batch_size=100,
    )
    one, two = Consumer(settings), Consumer(settings)
    with running(one), running(two):
        # Both in the group first, so that neither finishes alone before the other joins.
        wait_for(
            lambda: len(one._assigned) == 2 and len(two._assigned) == 2,
            timeout=60,
            what="the group to split the 4 partitions",
        )
        produce_events(stack.kafka_bootstrap, topic, events)
        wait_for(
            lambda: processed_count(postgres_dsn, consumer_group) >= len(events),
            timeout=120,
            what="all events",
        )
    # Both took part: each processed some of the events, together exactly all of them.
    assert counter(one.metrics.consumed) > 0
    assert counter(two.metrics.consumed) > 0
    expected = expected_boards(events)
    assert stored_boards(postgres_dsn) == expected
    assert redis_boards(consumer_redis) == expected


def test_leaderboard_keeps_only_the_top_n_in_redis(
    stack: Stack,
    create_topic: Callable[..., str],
    consumer_group: str,
    postgres_dsn: str,
    consumer_redis: redis.Redis,
) -> None:
    topic = create_topic(partitions=2)
    events = generate_events(1500, seed=4, players=30, games=1)
    produce_events(stack.kafka_bootstrap, topic, events)
    settings = settings_for(
        "leaderboard",
        bootstrap=stack.kafka_bootstrap,
        topic=topic,
        group=consumer_group,
        dsn=postgres_dsn,
        redis_url=stack.redis_url,
        top_n=5,
    )
    run_until_done(Consumer(settings), len(events))
    expected = expected_boards(events)
    totals = sorted(
        ((score, player) for (g, b, p, _, player), score in expected.items()
         if (b, p) == ("total_score", "all_time")),
        reverse=True,
    )  # fmt: skip
    top = consumer_redis.zrevrange("leaderboard:game1:total_score:all_time", 0, -1, withscores=True)
    assert [(int(entry[1]), str(entry[0])) for entry in top] == totals[:5]
    assert consumer_redis.ttl("leaderboard:game1:total_score:all_time") == -1
    daily = next(iter(consumer_redis.scan_iter(match="leaderboard:game1:wins:daily:*")))
    assert consumer_redis.ttl(daily) > 0  # expires with its keep time
