"""Independent computations of what the stats and leaderboard modes must store, and readers of
what PostgreSQL and Redis hold, for exact comparisons (consumer tests and the end-to-end test)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import redis

from tests.integration.consumer.helpers import rows

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
