"""Table tests of the autoscaling decision (pure: no Kafka, no cluster)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventfleet.operator.scaling import (
    LagReading,
    PartitionOffsets,
    Recommendation,
    ScalingPolicy,
    ceiling,
    decide,
    history_from_status,
    measure_lag,
    recommend,
)
from eventfleet.operator.spec import AutoscalingSpec, ReplicasSpec

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = ScalingPolicy.from_spec(
    ReplicasSpec(min=1, max=6),
    AutoscalingSpec(
        scale_down_stabilization_seconds=0, max_scale_down_step=1000, max_scale_up_step=1000
    ),
)


def lag(total: int, partitions: int = 12, with_lag: int | None = None) -> LagReading:
    busy = min(partitions, total) if with_lag is None else with_lag
    return LagReading(total, partitions, busy, uncommitted_partitions=0)


@pytest.mark.parametrize(
    ("policy_changes", "current", "reading", "expected", "reason_part"),
    [
        # (lag / lagPerReplica, rounded up) within [min, max]
        ({}, 1, lag(0), 1, "clamped to replicas.min 1"),
        ({}, 1, lag(1), 1, "lag 1 / 1000 per replica = 1"),
        ({}, 1, lag(1000), 1, "= 1"),
        ({}, 1, lag(1001), 2, "= 2"),
        ({}, 1, lag(2300), 3, "lag 2300 / 1000 per replica = 3"),
        ({}, 2, lag(100_000), 6, "clamped to replicas.max 6"),
        ({}, 6, lag(10), 1, "= 1"),
        # capped at the partition count: an extra consumer would sit idle
        ({}, 1, lag(9000, partitions=3), 3, "capped at 3 partitions"),
        ({"cap_at_partitions": False}, 1, lag(9000, partitions=3), 6, "clamped to replicas.max"),
        (
            {"cap_at_partitions_with_lag": True},
            1,
            lag(5000, partitions=12, with_lag=2),
            2,
            "capped at 2 partitions with lag",
        ),
        # activation lag and scale to zero (only when min is 0)
        ({"min_replicas": 0}, 2, lag(0), 0, "lag 0 <= activation lag 0"),
        ({"min_replicas": 0, "activation_lag": 50}, 0, lag(50), 0, "<= activation lag 50"),
        ({"min_replicas": 0, "activation_lag": 50}, 0, lag(51), 1, "= 1"),
        ({"min_replicas": 0}, 0, lag(1), 1, "= 1"),
        ({"activation_lag": 50}, 1, lag(10), 1, "clamped to replicas.min 1"),
        # step limits
        ({"max_scale_up_step": 2}, 1, lag(6000), 3, "limited to 2 replica(s) per step"),
        ({"max_scale_down_step": 1}, 5, lag(0), 4, "limited to 1 replica(s) per step"),
        # lag that cannot be read: hold, or fall back
        ({}, 4, None, 4, "lag unavailable: holding 4 replicas"),
        ({"fallback_replicas": 2}, 5, None, 2, "lag unavailable: fallback to 2 replicas"),
        ({"fallback_replicas": 20}, 1, None, 6, "fallback to 6 replicas"),
    ],
)
def test_single_decisions(
    policy_changes: dict[str, object],
    current: int,
    reading: LagReading | None,
    expected: int,
    reason_part: str,
) -> None:
    policy = replace(POLICY, **policy_changes)  # type: ignore[arg-type]
    decision = decide(policy, current, reading, (), NOW)
    assert decision.replicas == expected
    assert reason_part in decision.reason
    assert decision.healthy == (reading is not None)


def test_scale_down_waits_for_the_window() -> None:
    policy = replace(POLICY, scale_down_window=timedelta(seconds=300))
    history: tuple[Recommendation, ...] = ()
    replicas = 1
    # A burst: lag 5000 -> 5 replicas at once (no scale-up window).
    first = decide(policy, replicas, lag(5000), history, NOW)
    assert first.replicas == 5
    replicas, history = first.replicas, first.history
    # The backlog is gone, but the recommendation of 5 stays in the window for 300 s.
    for seconds in (15, 60, 299):
        quiet = decide(policy, replicas, lag(0), history, NOW + timedelta(seconds=seconds))
        assert quiet.replicas == 5, seconds
        assert "held: higher recommendations in the last 300s" in quiet.reason
        history = quiet.history
    after = decide(policy, replicas, lag(0), history, NOW + timedelta(seconds=301))
    assert after.replicas == 1
    assert after.recommendation == 1


def test_no_flapping_on_an_oscillating_lag() -> None:
    policy = replace(POLICY, scale_down_window=timedelta(seconds=300))
    replicas = 1
    history: tuple[Recommendation, ...] = ()
    seen = []
    for step in range(40):  # 10 minutes of polls every 15 s, lag alternating 4000 / 0
        reading = lag(4000 if step % 2 == 0 else 0)
        decision = decide(policy, replicas, reading, history, NOW + timedelta(seconds=15 * step))
        replicas, history = decision.replicas, decision.history
        seen.append(replicas)
    assert seen[0] == 4
    assert set(seen) == {4}  # up once, never down while bursts keep coming


def test_scale_up_window_waits_for_a_sustained_backlog() -> None:
    policy = replace(POLICY, scale_up_window=timedelta(seconds=30))
    calm = decide(policy, 1, lag(0), (), NOW)
    spike = decide(policy, 1, lag(3000), calm.history, NOW + timedelta(seconds=15))
    assert spike.recommendation == 3
    assert spike.replicas == 1  # the calm recommendation is still inside the 30 s window
    assert "held: lower recommendations in the last 30s" in spike.reason
    sustained = decide(policy, 1, lag(3000), spike.history, NOW + timedelta(seconds=31))
    assert sustained.replicas == 3


def test_history_is_trimmed_to_the_longest_window() -> None:
    policy = replace(POLICY, scale_down_window=timedelta(seconds=60))
    old = (
        Recommendation(NOW - timedelta(seconds=61), 6),
        Recommendation(NOW - timedelta(seconds=10), 2),
    )
    decision = decide(policy, 2, lag(0), old, NOW)
    assert [r.replicas for r in decision.history] == [2, 1]
    assert decision.replicas == 2


@pytest.mark.parametrize(
    ("offsets", "total", "with_lag", "uncommitted"),
    [
        ([PartitionOffsets(0, 0, 100, 40), PartitionOffsets(1, 0, 50, 50)], 60, 1, 0),
        # never committed: a consumer starting now reads every retained message (earliest)
        ([PartitionOffsets(0, 10, 100, None), PartitionOffsets(1, 0, 0, None)], 90, 1, 2),
        # committed below the retention start: what was deleted is not lag
        ([PartitionOffsets(0, 500, 600, 100)], 100, 1, 0),
        # committed beyond the end (topic recreated): no negative lag
        ([PartitionOffsets(0, 0, 10, 25)], 0, 0, 0),
        ([], 0, 0, 0),
    ],
)
def test_measure_lag(
    offsets: list[PartitionOffsets], total: int, with_lag: int, uncommitted: int
) -> None:
    reading = measure_lag(offsets)
    assert reading.total == total
    assert reading.partitions_with_lag == with_lag
    assert reading.uncommitted_partitions == uncommitted
    assert reading.partitions == len(offsets)


def test_measure_lag_latest_policy_counts_nothing_for_a_new_group() -> None:
    reading = measure_lag([PartitionOffsets(0, 0, 100, None)], reset_policy="latest")
    assert reading.total == 0


def test_history_is_read_back_from_status() -> None:
    stored = [
        {"time": "2026-11-27T11:59:30.250000Z", "replicas": 3},
        {"time": "2026-11-27T12:00:00+00:00", "replicas": 4},
        {"replicas": 5},  # no time
        {"time": "2026-11-27T12:00:00Z"},  # no replica count
        "not a mapping",
    ]
    assert history_from_status(stored) == (
        Recommendation(NOW - timedelta(seconds=29.75), 3),
        Recommendation(NOW, 4),
    )
    assert history_from_status(None) == ()
    assert history_from_status([]) == ()


policies = st.builds(
    ScalingPolicy,
    min_replicas=st.integers(0, 20),
    max_replicas=st.integers(1, 40),
    lag_per_replica=st.integers(1, 5000),
    activation_lag=st.integers(0, 1000),
    scale_up_window=st.just(timedelta(0)),
    scale_down_window=st.just(timedelta(0)),
    max_scale_up_step=st.integers(1, 10),
    max_scale_down_step=st.integers(1, 10),
    cap_at_partitions=st.booleans(),
    cap_at_partitions_with_lag=st.booleans(),
    fallback_replicas=st.none(),
).filter(lambda policy: policy.min_replicas <= policy.max_replicas)
readings = st.builds(
    lambda total, partitions, busy: LagReading(total, partitions, min(busy, partitions), 0),
    st.integers(0, 10**9),
    st.integers(0, 64),
    st.integers(0, 64),
)


@given(policies, readings)
def test_no_recommendation_exceeds_the_ceiling(policy: ScalingPolicy, reading: LagReading) -> None:
    assert recommend(policy, reading)[0] <= ceiling(policy, reading)


@given(policies, readings)
def test_the_ceiling_is_what_any_larger_lag_asks_for(
    policy: ScalingPolicy, reading: LagReading
) -> None:
    """So eventfleet_desired_replicas >= eventfleet_max_replicas means "nowhere left to scale"
    (the at-ceiling alert), never a fleet that could still grow."""
    flood = replace(reading, total=policy.activation_lag + policy.lag_per_replica * 10_000)
    assert recommend(policy, flood)[0] == ceiling(policy, reading)


def test_the_ceiling_is_the_partition_count_below_replicas_max() -> None:
    assert ceiling(POLICY, lag(0, partitions=3)) == 3
    assert ceiling(POLICY, lag(0, partitions=12)) == 6
    assert ceiling(replace(POLICY, cap_at_partitions=False), lag(0, partitions=3)) == 6
