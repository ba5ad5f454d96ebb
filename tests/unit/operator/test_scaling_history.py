"""The recommendation history stays bounded for every spec the CRD accepts, and bounding it does
not change a decision: the same lag sequence decided with the whole history (the reference
below) and with the stored one scales the same way."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from eventfleet.operator.scaling import (
    MAX_HISTORY,
    LagReading,
    Recommendation,
    ScalingPolicy,
    decide,
)
from eventfleet.operator.spec import AutoscalingSpec, ReplicasSpec

START = datetime(2026, 12, 1, tzinfo=UTC)
CRD = Path(__file__).parents[3] / "crds" / "eventconsumers.eventfleet.dev.yaml"


def crd_max_items() -> int:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return int(schema["properties"]["status"]["properties"]["recommendations"]["maxItems"])


def reading(total: int) -> LagReading:
    return LagReading(total, 1000, min(total, 1000), uncommitted_partitions=0)


def reference_target(
    policy: ScalingPolicy, current: int, wanted: Sequence[tuple[datetime, int]], now: datetime
) -> int:
    """Stabilization over every recommendation ever made (no trimming at all)."""
    up = [r for t, r in wanted if now - t <= policy.scale_up_window]
    down = [r for t, r in wanted if now - t <= policy.scale_down_window]
    target = current
    if current < min(up):
        target = min(up)
    elif current > max(down):
        target = max(down)
    target = min(target, current + policy.max_scale_up_step)
    return max(target, current - policy.max_scale_down_step)


def policy_of(up_seconds: int, down_seconds: int, most: int) -> ScalingPolicy:
    return ScalingPolicy.from_spec(
        ReplicasSpec(min=0, max=most),
        AutoscalingSpec(
            lag_per_replica=1,
            scale_up_stabilization_seconds=up_seconds,
            scale_down_stabilization_seconds=down_seconds,
            max_scale_up_step=1000,
            max_scale_down_step=1000,
        ),
    )


def test_the_longest_legal_windows_at_the_shortest_poll_stay_within_the_crd() -> None:
    """scaleDownStabilizationSeconds 86400 polled every 5 s keeps 17,280 recommendations in the
    window; status.recommendations accepts at most maxItems. A lag that never repeats a value
    (the worst case for any pruning) must still fit."""
    policy = policy_of(3600, 86_400, 1000)
    history: tuple[Recommendation, ...] = ()
    current = 0
    longest = 0
    for step in range(86_400 // 5 + 50):
        now = START + timedelta(seconds=5 * step)
        decision = decide(policy, current, reading((step * 7919) % 1001), history, now)
        history, current = decision.history, decision.replicas
        longest = max(longest, len(history))
    assert longest <= MAX_HISTORY <= crd_max_items()


@settings(max_examples=300, deadline=None)
@given(
    up_seconds=st.integers(0, 120),
    down_seconds=st.integers(0, 300),
    lags=st.lists(st.integers(0, 12), min_size=1, max_size=150),
    gaps=st.lists(st.integers(5, 40), min_size=150, max_size=150),
)
def test_bounding_the_history_changes_no_decision(
    up_seconds: int, down_seconds: int, lags: list[int], gaps: list[int]
) -> None:
    """With fewer distinct recommendations than MAX_HISTORY allows, the kept history decides
    exactly as the whole history would."""
    policy = policy_of(up_seconds, down_seconds, 12)
    history: tuple[Recommendation, ...] = ()
    everything: list[tuple[datetime, int]] = []
    current = 0
    now = START
    for total, gap in zip(lags, gaps, strict=False):
        now += timedelta(seconds=gap)
        decision = decide(policy, current, reading(total), history, now)
        everything.append((now, decision.recommendation))
        assert decision.replicas == reference_target(policy, current, everything, now)
        history, current = decision.history, decision.replicas
