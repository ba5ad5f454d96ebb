"""The logger's COPY lines (pure: no database needed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from eventfleet.consumer.batch import Good, Record
from eventfleet.consumer.modes.logger import LoggerMode
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.contract.events import Event

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def settings(retention_days: int) -> ConsumerSettings:
    return ConsumerSettings.model_validate(
        {
            "mode": "logger",
            "kafka_bootstrap": "127.0.0.1:1",
            "topic": "t",
            "consumer_group": "g",
            "postgres_dsn": "postgresql://u@127.0.0.1/db",
            "retention_days": retention_days,
        }
    )


def good(offset: int, when: datetime, data: dict[str, object] | None = None) -> Good:
    event = Event(
        event_type="player_login",
        player_id="p1",
        game_id="g1",
        timestamp=when,
        data=data or {},
        event_id=uuid.UUID(int=offset + 1),
    )
    return Good(Record("t", 0, offset, b""), event)


def test_events_before_the_first_kept_day_are_counted_not_written() -> None:
    # Three days kept: 25, 26 and 27 November.
    first_kept = datetime(2026, 11, 25, tzinfo=UTC)
    events = [
        good(0, first_kept - timedelta(microseconds=1)),
        good(1, first_kept),
        good(2, NOW),
        good(3, first_kept - timedelta(days=400)),
    ]
    staged = LoggerMode(settings(3)).stage(events, NOW)
    assert staged.expired == 2
    assert [line.split("\t")[1] for line in staged.lines] == [
        "2026-11-25T00:00:00+00:00",
        "2026-11-27T12:00:00+00:00",
    ]
    assert LoggerMode(settings(0)).stage(events, NOW).expired == 0  # 0: keep everything


def test_a_line_is_the_columns_in_copy_text_with_backslashes_doubled() -> None:
    same_second = NOW + timedelta(seconds=1)
    events = [good(7, same_second, {"path": "a\\b", "n": 1}), good(8, same_second)]
    first, second = LoggerMode(settings(3)).stage(events, NOW).lines
    assert first == (
        f"{uuid.UUID(int=8).hex}\t2026-11-27T12:00:01+00:00\tplayer_login\tg1\tp1\t"
        '{"path":"a\\\\\\\\b","n":1}\tt\t0\t7\n'
    )
    assert second.split("\t")[:2] == [uuid.UUID(int=9).hex, "2026-11-27T12:00:01+00:00"]
    assert second.split("\t")[5] == "{}"
