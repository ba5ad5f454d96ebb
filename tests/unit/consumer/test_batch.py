"""The loop's pure decisions: offsets admission (exactly once, fencing), bisection and how long
a batch waits to fill."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from eventfleet.consumer.batch import (
    NO_OFFSET,
    Bad,
    Batch,
    Record,
    admit,
    bisect_failures,
    fill_wait_seconds,
    parse_records,
    without_partitions,
)
from eventfleet.contract.events import DEFAULT_LIMITS, derived_event_id

T = "events"


def records(partition: int, offsets: range) -> list[Record]:
    return [Record(T, partition, n, b"") for n in offsets]


def test_first_batch_of_a_partition_without_stored_progress_is_taken_whole() -> None:
    batch = records(0, range(5, 10))
    result = admit(batch, {(T, 0): NO_OFFSET})
    assert result.records == batch
    assert result.next_offsets == {(T, 0): 10}
    assert result.seeks == {}


def test_continuing_from_the_stored_offset() -> None:
    batch = records(0, range(10, 20)) + records(1, range(3, 4))
    result = admit(batch, {(T, 0): 10, (T, 1): 3})
    assert result.records == batch
    assert result.next_offsets == {(T, 0): 20, (T, 1): 4}


def test_a_replay_is_skipped_and_the_consumer_seeks_forward() -> None:
    result = admit(records(0, range(10)), {(T, 0): 25})
    assert result.records == []
    assert result.next_offsets == {}
    assert result.seeks == {(T, 0): 25}
    assert result.already_done == 10


def test_a_partly_processed_batch_keeps_only_the_new_tail() -> None:
    # The previous owner committed up to 15 after we read our batch: we must not recount 10-14.
    result = admit(records(0, range(10, 20)), {(T, 0): 15})
    assert [r.offset for r in result.records] == [15, 16, 17, 18, 19]
    assert result.next_offsets == {(T, 0): 20}
    assert result.already_done == 5


def test_a_gap_processes_nothing_and_seeks_back() -> None:
    result = admit(records(0, range(30, 40)) + records(1, range(2)), {(T, 0): 20, (T, 1): 0})
    assert [r.tp for r in result.records] == [(T, 1), (T, 1)]
    assert result.seeks == {(T, 0): 20}
    assert (T, 0) not in result.next_offsets


def test_a_gap_is_accepted_after_seeking_there_once() -> None:
    # Kafka deleted offsets 20-29 (retention): after seeking to 20 it starts at 30.
    result = admit(records(0, range(30, 40)), {(T, 0): 20}, accepted_gaps={(T, 0): 20})
    assert len(result.records) == 10
    assert result.next_offsets == {(T, 0): 40}


@pytest.mark.parametrize("bad", [set(), {3}, {0, 7}, {1, 2, 3, 4, 5, 6, 7, 8}, set(range(16))])
def test_bisection_finds_exactly_the_failing_items(bad: set[int]) -> None:
    written: list[int] = []

    def attempt(items: Sequence[int]) -> str | None:
        failing = [i for i in items if i in bad]
        if failing:
            return f"refused {failing[0]}"
        written.extend(items)
        return None

    found = bisect_failures(list(range(16)), attempt)
    assert sorted(i for i, _ in found) == sorted(bad)
    assert all(error == f"refused {i}" for i, error in found)
    assert sorted(written) == sorted(set(range(16)) - bad)


def test_bisection_attempts_stay_logarithmic_for_one_bad_item() -> None:
    calls = 0

    def attempt(items: Sequence[int]) -> str | None:
        nonlocal calls
        calls += 1
        return "no" if 700 in items else None

    assert bisect_failures(list(range(1000)), attempt) == [(700, "no")]
    assert calls <= 2 * 11


def test_parse_records_derives_ids_from_the_position() -> None:
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    event = {
        "event_type": "player_login",
        "player_id": "p",
        "game_id": "g",
        "timestamp": "2026-11-27T11:00:00Z",
    }
    with_id = {**event, "event_id": str(uuid.UUID(int=5))}
    good, bad = parse_records(
        [
            Record(T, 2, 41, json.dumps(event).encode()),
            Record(T, 2, 42, json.dumps(with_id).encode()),
            Record(T, 2, 43, b"{"),
        ],
        now=now,
        limits=DEFAULT_LIMITS,
    )
    assert [g.event.event_id for g in good] == [derived_event_id(T, 2, 41), uuid.UUID(int=5)]
    assert [(b.record.offset, b.reason) for b in bad] == [(43, "invalid_json")]


@pytest.mark.parametrize(
    ("now_ms", "produced_ms", "timeout_ms", "expected"),
    [
        (1_000_000, 1_000_000, 100, 0.1),  # just produced: the whole window
        (1_000_030, 1_000_000, 100, 0.07),  # produced 30 ms ago: the rest of the window
        (1_000_100, 1_000_000, 100, 0.0),  # the window is over: close now
        (1_005_000, 1_000_000, 100, 0.0),  # a backlog: never wait behind old records
        (1_000_000, 1_060_000, 100, 0.1),  # a producer clock ahead: at most the window
        (1_000_000, None, 250, 0.25),  # no timestamp: the whole window
        (1_000_000, -1, 250, 0.25),  # librdkafka's "not available"
    ],
)
def test_a_batch_closes_its_timeout_after_its_oldest_record_was_produced(
    now_ms: int, produced_ms: int | None, timeout_ms: int, expected: float
) -> None:
    assert fill_wait_seconds(now_ms, produced_ms, timeout_ms) == pytest.approx(expected)


def test_a_batch_fetched_before_a_seek_loses_the_records_of_the_partitions_that_move() -> None:
    now = datetime.now(UTC)
    polled = records(0, range(3)) + records(1, range(3))
    batch = Batch(polled, [], [Bad(r, "invalid_json", "") for r in polled], now, 1.0, "staged")
    assert without_partitions(batch, {(T, 2)}) is batch  # none of its records move
    kept = without_partitions(batch, {(T, 1)})
    assert kept.records == records(0, range(3))
    assert [b.record for b in kept.bad] == records(0, range(3))
    assert kept.staged is None  # staged for the whole batch: the transaction stages it again
    assert (kept.now, kept.started) == (now, 1.0)
