"""Autoscaling decisions: pure functions from lag and history to a replica count and a reason.

The autoscaling loop (autoscaler.py) measures offsets (I/O); everything that decides lives here and
is table-tested (tests/unit/operator/test_scaling.py).

The algorithm follows the Horizontal Pod Autoscaler's behaviour model, on consumer-group lag:

1. recommendation = ceil(lag / lagPerReplica), 0 while lag <= activationLag (scale to zero is
   possible only when replicas.min is 0), capped at the partition count (a consumer beyond the
   partition count sits idle) and clamped to [min, max];
2. stabilization: scale up to the lowest recommendation of the scale-up window, down to the
   highest recommendation of the scale-down window (so one quiet poll cannot drop replicas);
3. step limits: at most maxScaleUpStep added and maxScaleDownStep removed per decision.

Lag that cannot be read holds the current replicas (or goes to fallbackReplicas when set), and
the decision says it is unhealthy, which becomes AutoscalerHealthy=False.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from eventfleet.operator.spec import AutoscalingSpec, ReplicasSpec


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    partition: int
    low: int  # earliest retained offset
    high: int  # high watermark: the offset the next message will get
    committed: int | None  # the group's committed offset; None when it never committed


@dataclass(frozen=True, slots=True)
class LagReading:
    total: int
    partitions: int
    partitions_with_lag: int
    uncommitted_partitions: int  # partitions where the group has no committed offset yet


def measure_lag(
    offsets: Sequence[PartitionOffsets],
    reset_policy: Literal["earliest", "latest"] = "earliest",
) -> LagReading:
    """Lag = sum over partitions of (high watermark - committed).

    A partition the group never committed is the case other Kafka autoscalers get wrong (they
    report 0 and never wake a scaled-to-zero consumer, or report the whole topic forever). Here it
    counts what a consumer starting now would read: with auto.offset.reset=earliest (what
    eventfleet consumers use) every retained message, with latest nothing. A committed offset
    beyond the high watermark (a recreated topic) counts as no lag rather than negative lag.
    """
    per_partition = []
    uncommitted = 0
    for entry in offsets:
        if entry.committed is None or entry.committed < 0:
            uncommitted += 1
            start = entry.low if reset_policy == "earliest" else entry.high
        else:
            start = max(entry.committed, entry.low)  # offsets below `low` were deleted
        per_partition.append(max(entry.high - start, 0))
    return LagReading(
        total=sum(per_partition),
        partitions=len(offsets),
        partitions_with_lag=sum(1 for lag in per_partition if lag > 0),
        uncommitted_partitions=uncommitted,
    )


@dataclass(frozen=True, slots=True)
class Recommendation:
    time: datetime
    replicas: int


def history_from_status(stored: Any) -> tuple[Recommendation, ...]:
    """The recommendations the previous decision stored in status.recommendations (times as
    written there: ISO 8601, "Z" for UTC). Entries without a time or a replica count are skipped."""
    return tuple(
        Recommendation(datetime.fromisoformat(r["time"].replace("Z", "+00:00")), r["replicas"])
        for r in stored or []
        if isinstance(r, Mapping) and "time" in r and "replicas" in r
    )


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    min_replicas: int
    max_replicas: int
    lag_per_replica: int
    activation_lag: int
    scale_up_window: timedelta
    scale_down_window: timedelta
    max_scale_up_step: int
    max_scale_down_step: int
    cap_at_partitions: bool
    cap_at_partitions_with_lag: bool
    fallback_replicas: int | None

    @classmethod
    def from_spec(cls, replicas: ReplicasSpec, autoscaling: AutoscalingSpec) -> ScalingPolicy:
        return cls(
            min_replicas=replicas.min,
            max_replicas=replicas.max,
            lag_per_replica=autoscaling.lag_per_replica,
            activation_lag=autoscaling.activation_lag,
            scale_up_window=timedelta(seconds=autoscaling.scale_up_stabilization_seconds),
            scale_down_window=timedelta(seconds=autoscaling.scale_down_stabilization_seconds),
            max_scale_up_step=autoscaling.max_scale_up_step,
            max_scale_down_step=autoscaling.max_scale_down_step,
            cap_at_partitions=autoscaling.cap_at_partitions,
            cap_at_partitions_with_lag=autoscaling.cap_at_partitions_with_lag,
            fallback_replicas=autoscaling.fallback_replicas,
        )

    def clamp(self, replicas: int) -> int:
        return min(max(replicas, self.min_replicas), self.max_replicas)


@dataclass(frozen=True, slots=True)
class ScalingDecision:
    replicas: int  # what the Deployment should run now
    recommendation: int  # before stabilization and step limits
    reason: str  # for status.lastScale, the Kubernetes Event and logs
    healthy: bool  # False when lag could not be read
    history: tuple[Recommendation, ...]  # to store for the next decision


def recommend(policy: ScalingPolicy, reading: LagReading) -> tuple[int, str]:
    """Step 1: the replicas this lag alone asks for, and why."""
    if reading.total <= policy.activation_lag:
        wanted, why = 0, f"lag {reading.total} <= activation lag {policy.activation_lag}"
    else:
        wanted = max(1, math.ceil(reading.total / policy.lag_per_replica))
        why = f"lag {reading.total} / {policy.lag_per_replica} per replica = {wanted}"
    if policy.cap_at_partitions and reading.partitions > 0 and wanted > reading.partitions:
        wanted, why = reading.partitions, f"{why}, capped at {reading.partitions} partitions"
    if policy.cap_at_partitions_with_lag and wanted > reading.partitions_with_lag > 0:
        wanted = reading.partitions_with_lag
        why = f"{why}, capped at {wanted} partitions with lag"
    clamped = policy.clamp(wanted)
    if clamped != wanted:
        bound = "min" if clamped > wanted else "max"
        why = f"{why}, clamped to replicas.{bound} {clamped}"
    return clamped, why


def ceiling(policy: ScalingPolicy, reading: LagReading) -> int:
    """The most replicas `recommend` can ask for with this reading's partitions, whatever the
    lag: where a fleet whose lag keeps growing has nowhere left to scale."""
    most = policy.max_replicas
    if policy.cap_at_partitions and reading.partitions > 0:
        most = min(most, reading.partitions)
    if policy.cap_at_partitions_with_lag and reading.partitions_with_lag > 0:
        most = min(most, reading.partitions_with_lag)
    return policy.clamp(most)


# status.recommendations holds at most this many (the CRD allows 512). Exact pruning keeps one
# entry per distinct replica count and window at most (see needed_history), so this cap is only
# reached when the recommendation takes over 100 distinct values inside one window.
MAX_HISTORY: Final = 200


def needed_history(
    policy: ScalingPolicy, history: Sequence[Recommendation], now: datetime
) -> tuple[Recommendation, ...]:
    """The recommendations a later decision can still need, oldest first.

    Stabilization reads only the lowest recommendation of the scale-up window and the highest of
    the scale-down window. An entry with a later one at or below it can never be the lowest of
    any later scale-up window (the later one stays in the window longer), and likewise for the
    highest. So it is enough to keep, per window, the entries no later one dominates: a strictly
    rising chain for the minimum, a strictly falling chain for the maximum. That is exact, and
    bounded by the number of distinct replica counts rather than by window / pollInterval
    (86400 s / 5 s would be 17,280 entries, which the API server refuses to store).

    Beyond MAX_HISTORY the oldest entries go: the windows then end early, never the newest
    recommendation.
    """
    ordered = sorted((r for r in history if r.time <= now), key=lambda r: r.time)
    keep: set[int] = set()
    lowest_later: int | None = None
    highest_later: int | None = None
    for index in range(len(ordered) - 1, -1, -1):
        entry = ordered[index]
        age = now - entry.time
        if age <= policy.scale_up_window and (
            lowest_later is None or entry.replicas < lowest_later
        ):
            keep.add(index)
        if age <= policy.scale_down_window and (
            highest_later is None or entry.replicas > highest_later
        ):
            keep.add(index)
        lowest_later = entry.replicas if lowest_later is None else min(lowest_later, entry.replicas)
        highest_later = (
            entry.replicas if highest_later is None else max(highest_later, entry.replicas)
        )
    kept = tuple(ordered[index] for index in sorted(keep))
    return kept[-MAX_HISTORY:]


def decide(
    policy: ScalingPolicy,
    current: int,
    reading: LagReading | None,
    history: Sequence[Recommendation],
    now: datetime,
) -> ScalingDecision:
    """Steps 1-3 for one poll. `history` is what the previous decision returned."""
    if reading is None:
        if policy.fallback_replicas is not None:
            target = policy.clamp(policy.fallback_replicas)
            why = f"lag unavailable: fallback to {target} replicas"
        else:
            target, why = current, f"lag unavailable: holding {current} replicas"
        return ScalingDecision(target, target, why, healthy=False, history=tuple(history))

    wanted, why = recommend(policy, reading)
    window = needed_history(policy, (*history, Recommendation(now, wanted)), now)

    up_floor = min(r.replicas for r in window if now - r.time <= policy.scale_up_window)
    down_ceiling = max(r.replicas for r in window if now - r.time <= policy.scale_down_window)
    if current < up_floor:
        target = up_floor
    elif current > down_ceiling:
        target = down_ceiling
    else:
        target = current
    if target != wanted:
        if target == current and wanted > current:
            why = f"{why}; held: lower recommendations in the last {_span(policy.scale_up_window)}"
        elif target == current and wanted < current:
            why = (
                f"{why}; held: higher recommendations in the last {_span(policy.scale_down_window)}"
            )
        else:
            why = f"{why}; stabilized at {target}"

    limited = min(target, current + policy.max_scale_up_step)
    limited = max(limited, current - policy.max_scale_down_step)
    if limited != target:
        step = policy.max_scale_up_step if limited > current else policy.max_scale_down_step
        why = f"{why}; limited to {step} replica(s) per step"
    return ScalingDecision(limited, wanted, why, healthy=True, history=window)


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds}s"
