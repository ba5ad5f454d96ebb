"""Pure per-batch computations of the modes: no I/O, no clock (time comes in as arguments).

- stats: one additive delta per (game_id, player_id);
- leaderboard: one contribution per (game, board, period, period key, player);
- logger: which daily partitions exist and which have expired.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final

from eventfleet.contract.events import Event
from eventfleet.contract.names import Board, Period, board_key

# ----------------------------------------------------------------------------------------- stats

_TYPE_COLUMNS: Final = {
    "player_login": "logins",
    "player_logout": "logouts",
    "player_level_up": "level_ups",
    "match_completed": "matches_played",
    "achievement_unlocked": "achievements",
    "purchase": "purchases",
}


@dataclass(slots=True)
class StatsDelta:
    """What one batch adds to one player's row. Counts and sums add; maxima and times merge."""

    first_seen: datetime
    last_seen: datetime
    total_events: int = 0
    logins: int = 0
    logouts: int = 0
    level_ups: int = 0
    matches_played: int = 0
    achievements: int = 0
    purchases: int = 0
    other_events: dict[str, int] = field(default_factory=dict)
    wins: int = 0
    total_score: int = 0
    high_score: int = 0
    kills: int = 0
    deaths: int = 0
    max_level: int = 0
    total_spent: Decimal = Decimal(0)

    def add(self, event: Event) -> None:
        self.total_events += 1
        self.first_seen = min(self.first_seen, event.timestamp)
        self.last_seen = max(self.last_seen, event.timestamp)
        kind = event.event_type
        data = event.data
        if kind == "match_completed":
            self.matches_played += 1
            score: int = data["score"]
            self.total_score += score
            self.high_score = max(self.high_score, score)
            self.wins += 1 if data["won"] else 0
            self.kills += data.get("kills", 0)
            self.deaths += data.get("deaths", 0)
        elif kind == "player_login":
            self.logins += 1
        elif kind == "player_level_up":
            self.level_ups += 1
            self.max_level = max(self.max_level, data["level"])
        elif kind == "purchase":
            self.purchases += 1
            self.total_spent += data["amount"]
        elif kind == "achievement_unlocked":
            self.achievements += 1
        elif kind == "player_logout":
            self.logouts += 1
        else:
            self.other_events[kind] = self.other_events.get(kind, 0) + 1


def aggregate_stats(events: Iterable[Event]) -> dict[tuple[str, str], StatsDelta]:
    """One delta per (game_id, player_id). (The upsert orders rows itself: fixed lock order.)"""
    deltas: dict[tuple[str, str], StatsDelta] = {}
    for event in events:
        key = (event.game_id, event.player_id)
        delta = deltas.get(key)
        if delta is None:
            delta = deltas[key] = StatsDelta(event.timestamp, event.timestamp)
        delta.add(event)
    return deltas


# ----------------------------------------------------------------------------------- leaderboard

BOARD_BITS: Final[dict[str, int]] = {"total_score": 1, "high_score": 2, "level": 4, "wins": 8}
# Index of each board's value in a leaderboard delta: [total_score, high_score, level, wins, bits]
BOARD_INDEX: Final[dict[str, int]] = {"total_score": 0, "high_score": 1, "level": 2, "wins": 3}


@dataclass(frozen=True, slots=True)
class BoardKey:
    game_id: str
    board: Board
    period: Period
    period_key: str  # 'all_time', '2026-11-27' (daily) or '2026-W48' (weekly, ISO)

    @property
    def redis_key(self) -> str:
        return board_key(self.game_id, self.board, self.period, self.period_key)


@dataclass(frozen=True, slots=True)
class Keep:
    """How long daily and weekly boards live after their period ended."""

    daily_days: int = 7
    weekly_weeks: int = 5


def period_key(period: Period, when: datetime) -> str:
    if period == "all_time":
        return "all_time"
    day = when.astimezone(UTC).date()
    if period == "daily":
        return day.isoformat()
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def period_end(period: Period, key: str) -> datetime | None:
    """When a period ends (UTC), None for all_time."""
    if period == "all_time":
        return None
    if period == "daily":
        start = date.fromisoformat(key)
        return datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=1)
    year, week = key.split("-W")
    monday = date.fromisocalendar(int(year), int(week), 1)
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC) + timedelta(weeks=1)


def expires_at(period: Period, key: str, keep: Keep) -> datetime | None:
    end = period_end(period, key)
    if end is None:
        return None
    if period == "daily":
        return end + timedelta(days=keep.daily_days)
    return end + timedelta(weeks=keep.weekly_weeks)


def oldest_kept(period: Period, now: datetime, keep: Keep) -> str | None:
    """The oldest period key still kept at `now` (keys of one period sort by time)."""
    if period == "all_time":
        return None
    if period == "daily":
        return (now - timedelta(days=keep.daily_days)).date().isoformat()
    return period_key("weekly", now - timedelta(weeks=keep.weekly_weeks))


LeaderboardSlot = tuple[str, str, str, str]  # game_id, period, period_key, player_id


def aggregate_leaderboard(
    events: Iterable[Event],
    boards: Sequence[Board],
    periods: Sequence[Period],
    *,
    now: datetime,
    keep: Keep,
) -> dict[LeaderboardSlot, list[int]]:
    """(game, period, period key, player) -> [total_score, high_score, level, wins, board bits]:
    what the batch adds (sums) or proposes (maxima). Leaderboards ignore types other than
    match_completed and player_level_up; contributions to expired daily/weekly periods are
    dropped (they would resurrect a trimmed board)."""
    want_total, want_high = "total_score" in boards, "high_score" in boards
    want_wins, want_level = "wins" in boards, "level" in boards
    # Period keys of each UTC day, None where that period has already expired.
    by_day: dict[date, list[tuple[str, str]]] = {}
    found: dict[LeaderboardSlot, list[int]] = {}
    for event in events:
        kind = event.event_type
        if kind == "match_completed":
            score: int = event.data["score"]
            won = bool(event.data["won"]) and want_wins
            bits = (1 if want_total else 0) | (2 if want_high else 0) | (8 if won else 0)
            if not bits:
                continue
            add = (score if want_total else 0, score if want_high else 0, 0, 1 if won else 0)
        elif kind == "player_level_up" and want_level:
            bits = 4
            add = (0, 0, event.data["level"], 0)
        else:
            continue
        day = event.timestamp.date()  # timestamps are UTC (events.py converts them)
        keys = by_day.get(day)
        if keys is None:
            keys = by_day[day] = []
            for period in periods:
                key_text = period_key(period, event.timestamp)
                end = expires_at(period, key_text, keep)
                if end is None or end > now:
                    keys.append((period, key_text))
        for period_name, key_text in keys:
            slot = (event.game_id, period_name, key_text, event.player_id)
            row = found.get(slot)
            if row is None:
                found[slot] = [add[0], add[1], add[2], add[3], bits]
            else:
                row[0] += add[0]
                row[1] = max(row[1], add[1])
                row[2] = max(row[2], add[2])
                row[3] += add[3]
                row[4] |= bits
    return found


# ---------------------------------------------------------------------------------------- logger

PARTITION_PREFIX: Final = "events_p"


def partition_name(day: date) -> str:
    return f"{PARTITION_PREFIX}{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    if not name.startswith(PARTITION_PREFIX):
        return None
    try:
        return datetime.strptime(name.removeprefix(PARTITION_PREFIX), "%Y%m%d").date()
    except ValueError:
        return None


def earliest_kept_day(today: date, retention_days: int) -> date | None:
    """Events before this day are past retention (None: keep everything)."""
    if retention_days == 0:
        return None
    return today - timedelta(days=retention_days - 1)


def partitions_wanted(today: date, ahead_days: int) -> list[date]:
    """Today and the next `ahead_days` days: created ahead so inserts rarely create one."""
    return [today + timedelta(days=n) for n in range(ahead_days + 1)]


def expired_partitions(existing: Iterable[str], today: date, retention_days: int) -> list[str]:
    earliest = earliest_kept_day(today, retention_days)
    if earliest is None:
        return []
    found = []
    for name in existing:
        day = partition_day(name)
        if day is not None and day < earliest:
            found.append(name)
    return sorted(found)
