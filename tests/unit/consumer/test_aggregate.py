"""Per-batch aggregation of the stats and leaderboard modes, and logger partition planning."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from eventfleet.consumer.aggregate import (
    BoardKey,
    Keep,
    aggregate_leaderboard,
    aggregate_stats,
    expired_partitions,
    expires_at,
    oldest_kept,
    partition_day,
    partition_name,
    partitions_wanted,
    period_key,
)
from eventfleet.contract.events import Event

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)  # a Friday, ISO week 48


def ev(kind: str, player: str = "p1", when: datetime = NOW, **data: Any) -> Event:
    return Event(kind, player, "g", when, data, None)


def test_stats_count_sum_and_keep_extremes_per_player() -> None:
    early = datetime(2026, 11, 26, tzinfo=UTC)
    deltas = aggregate_stats(
        [
            ev("match_completed", score=10, won=True, kills=3, deaths=1),
            ev("match_completed", score=30, won=False),
            ev("player_level_up", level=4, when=early),
            ev("player_level_up", level=2),
            ev("purchase", amount=Decimal("1.50"), currency="EUR"),
            ev("purchase", amount=Decimal("2.25"), currency="USD"),
            ev("player_login"),
            ev("player_logout"),
            ev("achievement_unlocked", achievement_id="a"),
            ev("guild_joined"),
            ev("guild_joined"),
            ev("player_login", player="p2"),
        ]
    )
    assert list(deltas) == [("g", "p1"), ("g", "p2")]
    p1 = deltas[("g", "p1")]
    assert (p1.total_events, p1.matches_played, p1.wins, p1.total_score, p1.high_score) == (
        11, 2, 1, 40, 30,
    )  # fmt: skip
    assert (p1.kills, p1.deaths, p1.max_level, p1.level_ups) == (3, 1, 4, 2)
    assert p1.total_spent == Decimal("3.75")
    assert (p1.logins, p1.logouts, p1.achievements, p1.purchases) == (1, 1, 1, 2)
    assert p1.other_events == {"guild_joined": 2}
    assert (p1.first_seen, p1.last_seen) == (early, NOW)
    assert deltas[("g", "p2")].logins == 1


def test_period_keys_use_utc_dates_and_iso_weeks() -> None:
    assert period_key("all_time", NOW) == "all_time"
    assert period_key("daily", NOW) == "2026-11-27"
    assert period_key("weekly", NOW) == "2026-W48"
    # 2027-01-01 is a Friday in ISO week 53 of 2026.
    assert period_key("weekly", datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"


def test_board_keys_name_the_redis_sorted_set() -> None:
    assert BoardKey("g", "wins", "all_time", "all_time").redis_key == "leaderboard:g:wins:all_time"
    key = BoardKey("g", "level", "daily", "2026-11-27")
    assert key.redis_key == "leaderboard:g:level:daily:2026-11-27"


def test_leaderboard_sums_additive_boards_and_keeps_maxima() -> None:
    found = aggregate_leaderboard(
        [
            ev("match_completed", score=10, won=True),
            ev("match_completed", score=30, won=False),
            ev("player_level_up", level=5),
            ev("player_level_up", level=3),
            ev("player_login"),
            ev("guild_joined"),
        ],
        ["total_score", "high_score", "level", "wins"],
        ["all_time"],
        now=NOW,
        keep=Keep(),
    )
    # [total_score, high_score, level, wins, bits of the boards entered]
    assert found == {("g", "all_time", "all_time", "p1"): [40, 30, 5, 1, 1 | 2 | 4 | 8]}


def test_only_configured_boards_are_entered() -> None:
    found = aggregate_leaderboard(
        [ev("match_completed", score=10, won=True), ev("player_level_up", level=5)],
        ["wins"],
        ["all_time", "daily", "weekly"],
        now=NOW,
        keep=Keep(),
    )
    assert found == {
        ("g", "all_time", "all_time", "p1"): [0, 0, 0, 1, 8],
        ("g", "daily", "2026-11-27", "p1"): [0, 0, 0, 1, 8],
        ("g", "weekly", "2026-W48", "p1"): [0, 0, 0, 1, 8],
    }


def test_expired_periods_are_not_written() -> None:
    old = datetime(2026, 11, 1, tzinfo=UTC)
    found = aggregate_leaderboard(
        [ev("match_completed", when=old, score=5, won=True)],
        ["wins"],
        ["all_time", "daily", "weekly"],
        now=NOW,
        keep=Keep(daily_days=7, weekly_weeks=2),
    )
    assert {period for _, period, _, _ in found} == {"all_time"}


def test_expiry_and_the_oldest_kept_period_agree() -> None:
    keep = Keep(daily_days=7, weekly_weeks=5)
    assert expires_at("daily", "2026-11-27", keep) == datetime(2026, 12, 5, tzinfo=UTC)
    assert expires_at("all_time", "all_time", keep) is None
    oldest = oldest_kept("daily", NOW, keep)
    assert oldest == "2026-11-20"
    assert expires_at("daily", "2026-11-19", keep) <= NOW  # type: ignore[operator]
    assert expires_at("daily", "2026-11-20", keep) > NOW  # type: ignore[operator]
    week = oldest_kept("weekly", NOW, keep)
    assert week == "2026-W43"
    assert expires_at("weekly", "2026-W42", keep) <= NOW  # type: ignore[operator]
    assert expires_at("weekly", "2026-W43", keep) > NOW  # type: ignore[operator]


def test_partition_planning() -> None:
    today = date(2026, 11, 27)
    assert partition_name(today) == "events_p20261127"
    assert partition_day("events_p20261127") == today
    assert partition_day("events_default") is None
    assert partitions_wanted(today, 2) == [today, date(2026, 11, 28), date(2026, 11, 29)]
    existing = ["events_p20261120", "events_p20261124", "events_p20261125", "other"]
    assert expired_partitions(existing, today, 3) == ["events_p20261120", "events_p20261124"]
    assert expired_partitions(existing, today, 0) == []  # 0: keep everything
