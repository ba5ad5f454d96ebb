"""Pure decisions of the consumer loop: which records of a batch to process given the offsets
stored in PostgreSQL (exactly-once and fencing), parsing a batch, and isolating poisoned records
by bisection. No I/O: the loop passes in what it read and performs what is decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, NamedTuple, TypeVar

from eventfleet.contract.events import (
    Event,
    ParseLimits,
    Rejection,
    derived_event_id,
    parse_event,
)

TopicPartition = tuple[str, int]
NO_OFFSET: Final = -1  # stored when a partition has no recorded progress yet
DATABASE_ERROR: Final = "database_error"  # DLQ reason of a record the database refused
T = TypeVar("T")


# Records, Good and Bad are built once per event: immutable named tuples cost a third of what
# frozen dataclasses do to create.


class Record(NamedTuple):
    """One Kafka message, reduced to what processing needs."""

    topic: str
    partition: int
    offset: int
    value: bytes

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)


class Good(NamedTuple):
    record: Record
    event: Event  # always has an event_id (derived from the position when the producer sent none)


class Bad(NamedTuple):
    record: Record
    reason: str
    message: str
    errors: tuple[tuple[str, str], ...] = ()  # (field, message)


def parse_records(
    records: Iterable[Record], *, now: datetime, limits: ParseLimits
) -> tuple[list[Good], list[Bad]]:
    good: list[Good] = []
    bad: list[Bad] = []
    for record in records:
        result = parse_event(record.value, now=now, limits=limits)
        if isinstance(result, Rejection):
            errors = tuple((e.field, e.message) for e in result.errors)
            bad.append(Bad(record, result.reason.value, result.message, errors))
            continue
        if result.event_id is None:
            result = result.with_event_id(
                derived_event_id(record.topic, record.partition, record.offset)
            )
        good.append(Good(record, result))
    return good, bad


def fill_wait_seconds(now_ms: float, produced_ms: int | None, timeout_ms: int) -> float:
    """How long a batch whose oldest record was produced at `produced_ms` may still wait for
    more records: a batch closes `timeout_ms` after its oldest record was produced (or when
    full). Records that already waited in Kafka (a backlog) close it at once; a producer
    clock ahead of ours never makes it wait longer than `timeout_ms`; an unknown time
    (no timestamp) waits the whole `timeout_ms`."""
    if produced_ms is None or produced_ms <= 0:
        return timeout_ms / 1000
    left = produced_ms + timeout_ms - now_ms
    return min(max(left, 0.0), float(timeout_ms)) / 1000


@dataclass(slots=True)
class Admission:
    """The outcome of checking a batch against the stored offsets (under their row locks)."""

    records: list[Record] = field(default_factory=list)  # to process, in arrival order
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)  # new stored values
    seeks: dict[TopicPartition, int] = field(default_factory=dict)  # rewind/forward to these
    already_done: int = 0  # records at offsets below the stored one (a replay): skipped


def admit(
    records: Sequence[Record],
    stored: Mapping[TopicPartition, int],
    accepted_gaps: Mapping[TopicPartition, int] | None = None,
) -> Admission:
    """Keep exactly the records that continue each partition from its stored offset.

    - below the stored offset: already processed by someone (a replay, or the previous owner
      of the partition finished them): skipped, and the consumer seeks forward;
    - starting after the stored offset: a gap, records would be lost (another owner committed
      less than we assumed, or we were positioned wrong): nothing is processed, the consumer
      seeks back to the stored offset. If it already sought there and Kafka still starts later
      (`accepted_gaps`), the missing offsets no longer exist (retention) and the gap is accepted.
    """
    gaps = accepted_gaps or {}
    by_partition: dict[TopicPartition, list[Record]] = {}
    for record in records:
        by_partition.setdefault(record.tp, []).append(record)
    result = Admission()
    keep: set[TopicPartition] = set()
    whole = True  # every partition kept without dropping a record (the usual case)
    for tp, items in by_partition.items():
        start = stored.get(tp, NO_OFFSET)
        fresh = items if start == NO_OFFSET else [r for r in items if r.offset >= start]
        result.already_done += len(items) - len(fresh)
        if not fresh:
            result.seeks[tp] = start
            whole = False
            continue
        if start != NO_OFFSET and fresh[0].offset > start and gaps.get(tp) != start:
            result.seeks[tp] = start
            whole = False
            continue
        keep.add(tp)
        whole = whole and len(fresh) == len(items)
        result.next_offsets[tp] = fresh[-1].offset + 1
    if whole:
        result.records = list(records)
        return result
    result.records = [
        r
        for r in records
        if r.tp in keep and r.offset >= max(stored.get(r.tp, NO_OFFSET), NO_OFFSET + 1)
    ]
    return result


def bisect_failures(
    items: Sequence[T], attempt: Callable[[Sequence[T]], str | None]
) -> list[tuple[T, str]]:
    """Find the items that make `attempt` fail, trying halves of a failing slice.

    `attempt` writes a slice and returns None, or rolls its slice back and returns the error.
    Returns each failing single item with its error; everything else has been written."""
    if not items:
        return []
    error = attempt(items)
    if error is None:
        return []
    if len(items) == 1:
        return [(items[0], error)]
    middle = len(items) // 2
    return bisect_failures(items[:middle], attempt) + bisect_failures(items[middle:], attempt)
