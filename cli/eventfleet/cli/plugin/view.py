"""What `kubectl eventfleet status` prints, from what was read. Pure: every input is plain data,
so each part of the screen is tested without a cluster.

Reads that failed arrive as `Unreadable(why)` and are printed as such: a status screen says what
it could not see instead of failing whole (Kafka and PostgreSQL are often not reachable from
where kubectl runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventfleet.operator.scaling import PartitionOffsets


@dataclass(frozen=True)
class Unreadable:
    why: str


@dataclass(frozen=True)
class Pod:
    name: str
    phase: str
    ready: str  # "1/1"
    restarts: int
    started: datetime | None
    node: str


@dataclass(frozen=True)
class DlqRate:
    last_hour: int
    last_day: int
    by_reason: Mapping[str, int]  # last day


@dataclass(frozen=True)
class Seen:
    """Everything `status` read about one EventConsumer."""

    resource: Mapping[str, Any]
    events: Sequence[Mapping[str, Any]]  # core/v1 Events of this object, any order
    pods: Sequence[Pod] | Unreadable
    partitions: Sequence[PartitionOffsets] | Unreadable
    dlq: DlqRate | Unreadable


def age(when: datetime | str | None, now: datetime) -> str:
    if when is None:
        return "-"
    moment = datetime.fromisoformat(when.replace("Z", "+00:00")) if isinstance(when, str) else when
    seconds = max(0, int((now - moment.astimezone(UTC)).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _when(event: Mapping[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or "")


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _header(resource: Mapping[str, Any], now: datetime) -> list[str]:
    meta, spec = resource.get("metadata", {}), resource.get("spec", {})
    status = resource.get("status", {})
    scaling = spec.get("autoscaling", {})
    replicas = spec.get("replicas", {})
    if spec.get("paused"):
        mode = "paused (hands off)"
    elif scaling.get("enabled", True):
        mode = f"autoscaling {replicas.get('min', '?')}..{replicas.get('max', '?')}"
    else:
        mode = f"manual, {replicas.get('count', 'current')} replicas"
    lag = status.get("lag", {})
    title = f"{meta.get('namespace')}/{meta.get('name')}  {status.get('phase', 'Pending')}"
    topic = spec.get("kafka", {}).get("topic")
    group = status.get("consumerGroup", "-")
    created = age(meta.get("creationTimestamp"), now)
    ready = f"{status.get('readyReplicas', 0)}/{status.get('replicas', 0)}"
    lagging = f"{lag.get('partitionsWithLag', '-')} lagging"
    total = f"lag {lag.get('total', '-')} over {lag.get('partitions', '-')} partitions"
    measured = age(lag.get("measuredAt"), now)
    return [
        f"{title}  mode {spec.get('mode')}  topic {topic}",
        f"  group {group}  schema v{status.get('schemaVersion', '-')}  age {created}",
        f"  replicas {ready} ready, desired {status.get('desiredReplicas', '-')}  ({mode})",
        f"  {total}, {lagging} (read {measured} ago)",
    ]


def _conditions(resource: Mapping[str, Any], now: datetime) -> list[str]:
    conditions = resource.get("status", {}).get("conditions", [])
    if not conditions:
        return ["Conditions: none yet"]
    rows = [["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]]
    rows += [
        [c.get("type", ""), c.get("status", ""), c.get("reason", ""),
         age(c.get("lastTransitionTime"), now), c.get("message", "")]
        for c in conditions
    ]  # fmt: skip
    return ["Conditions:", *_table(rows)]


def _scaling(
    resource: Mapping[str, Any], events: Sequence[Mapping[str, Any]], now: datetime
) -> list[str]:
    scaled = sorted(
        (e for e in events if str(e.get("reason", "")).startswith("Scaled")),
        key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
        reverse=True,
    )[:5]
    last = resource.get("status", {}).get("lastScale")
    if not scaled and not last:
        return ["Scale decisions: none yet"]
    lines = ["Scale decisions (newest first):"]
    if not scaled and last:
        lines.append(f"  {age(last.get('time'), now)} ago  {last.get('from')} -> {last.get('to')}"
                     f"  {last.get('reason', '')}")  # fmt: skip
    for event in scaled:
        when = event.get("lastTimestamp") or event.get("eventTime")
        count = event.get("count") or 1
        lines.append(f"  {age(when, now)} ago  {event.get('reason')}: {event.get('message', '')}"
                     + (f" (x{count})" if count > 1 else ""))  # fmt: skip
    return lines


def _warnings(events: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    warnings = [e for e in events if e.get("type") == "Warning"]
    if not warnings:
        return []
    warnings.sort(key=_when, reverse=True)
    lines = ["Warnings (newest first):"]
    for event in warnings[:5]:
        count = event.get("count") or 1
        when = age(_when(event) or None, now)
        line = f"  {when} ago  {event.get('reason')}: {event.get('message', '')}"
        lines.append(line + (f" (x{count})" if count > 1 else ""))
    return lines


def _partitions(partitions: Sequence[PartitionOffsets] | Unreadable) -> list[str]:
    if isinstance(partitions, Unreadable):
        return [f"Lag per partition: not readable from here ({partitions.why})"]
    rows = [["PARTITION", "COMMITTED", "END", "LAG"]]
    for p in partitions:
        committed = p.committed if p.committed is not None else p.low
        rows.append([str(p.partition), "-" if p.committed is None else str(p.committed),
                     str(p.high), str(max(0, p.high - committed))])  # fmt: skip
    return ["Lag per partition (read now):", *_table(rows)]


def _dlq(dlq: DlqRate | Unreadable) -> list[str]:
    if isinstance(dlq, Unreadable):
        return [f"Dead letters: not readable from here ({dlq.why})"]
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(dlq.by_reason.items())) or "none"
    counts = f"{dlq.last_hour} in the last hour, {dlq.last_day} in the last day"
    return [f"Dead letters: {counts} ({reasons})"]


def _pods(pods: Sequence[Pod] | Unreadable, now: datetime) -> list[str]:
    if isinstance(pods, Unreadable):
        return [f"Pods: not readable ({pods.why})"]
    if not pods:
        return ["Pods: none"]
    rows = [["NAME", "PHASE", "READY", "RESTARTS", "AGE", "NODE"]]
    rows += [[p.name, p.phase, p.ready, str(p.restarts), age(p.started, now), p.node] for p in pods]
    return ["Pods:", *_table(rows)]


def render(seen: Seen, now: datetime) -> str:
    sections = [
        _header(seen.resource, now),
        _conditions(seen.resource, now),
        _partitions(seen.partitions),
        _scaling(seen.resource, seen.events, now),
        _warnings(seen.events, now),
        _dlq(seen.dlq),
        _pods(seen.pods, now),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"
