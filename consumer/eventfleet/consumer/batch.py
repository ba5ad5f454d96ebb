"""Pure decisions of the consumer loop: which records of a batch to process given the offsets
stored in PostgreSQL (exactly-once and fencing), parsing a batch, and isolating poisoned records
by bisection; and the Batch itself. No I/O: the loop passes in what it read and performs what is
decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
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
# DLQ reason of a record that made the consumer's own code raise (a bug): the record is set
# aside with the exception's type and message, and the partition moves on.
INTERNAL_ERROR: Final = "internal_error"
T = TypeVar("T")
E = TypeVar("E")


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


@dataclass(slots=True)
class Batch:
    """What one poll gathered, parsed and staged in the polling thread, for the transaction."""

    records: list[Record]
    good: list[Good]
    bad: list[Bad]
    now: datetime
    started: float
    staged: object = None  # mode.stage(good, now), computed while the previous batch commits
    repeated: list[Good] = field(default_factory=list)  # a second record of an event_id
    topic_ids: dict[str, str] = field(default_factory=dict)  # the ids derived ids were made with


def without_partitions(batch: Batch, tps: set[TopicPartition]) -> Batch:
    """The batch minus the records of `tps` (the same batch when it has none of them; the mode
    stages a smaller one again in its transaction)."""
    if not any(r.tp in tps for r in batch.records):
        return batch
    return Batch(
        [r for r in batch.records if r.tp not in tps],
        [g for g in batch.good if g.record.tp not in tps],
        [b for b in batch.bad if b.record.tp not in tps],
        batch.now,
        batch.started,
        repeated=[g for g in batch.repeated if g.record.tp not in tps],
        topic_ids=batch.topic_ids,
    )


def parse_records(
    records: Iterable[Record],
    *,
    now: datetime,
    limits: ParseLimits,
    topic_ids: Mapping[str, str] | None = None,
) -> tuple[list[Good], list[Bad]]:
    """Each record as an event with an id, or a Bad with the reason. An event without an id
    gets one derived from its position in the topic incarnation `topic_ids` names."""
    ids = topic_ids or {}
    good: list[Good] = []
    bad: list[Bad] = []
    for record in records:
        try:
            result = parse_event(record.value, now=now, limits=limits)
        except Exception as error:  # noqa: BLE001 - one record's bug must not stop the partition
            bad.append(Bad(record, INTERNAL_ERROR, internal_message(error)))
            continue
        if isinstance(result, Rejection):
            errors = tuple((e.field, e.message) for e in result.errors)
            bad.append(Bad(record, result.reason.value, result.message, errors))
            continue
        if result.event_id is None:
            result = result.with_event_id(
                derived_event_id(
                    record.topic, record.partition, record.offset, ids.get(record.topic)
                )
            )
        good.append(Good(record, result))
    return good, bad


def internal_message(error: BaseException) -> str:
    """What a DLQ row says about an exception of the consumer's own code."""
    return f"{type(error).__name__}: {error}"[:1000]


def first_of_each_event(
    goods: Sequence[Good], types: Collection[str] | None = None
) -> tuple[list[Good], list[Good]]:
    """The records of a batch with the first of each event_id, and the later ones (a client's
    retry that landed in the same batch): those are not counted again. Only events of `types`
    are checked (None: all); the others count for nothing and are all kept."""
    seen: set[object] = set()
    kept: list[Good] = []
    repeated: list[Good] = []
    for good in goods:
        event_id = good.event.event_id
        if types is not None and good.event.event_type not in types:
            kept.append(good)
        elif event_id in seen:
            repeated.append(good)
        else:
            seen.add(event_id)
            kept.append(good)
    return kept, repeated


def restart_recreated(
    stored: Mapping[TopicPartition, tuple[int, str | None]], topic_ids: Mapping[str, str]
) -> tuple[dict[TopicPartition, int], set[TopicPartition]]:
    """The offsets to admit a batch against, and the partitions whose topic was recreated.

    A stored offset counts in the topic incarnation whose id is stored beside it. When the
    topic's id now is another one, the topic was deleted and created again: its new records
    start at offset 0, and the stored offset (often above the new topic's end) would skip them
    in silence. Such a partition starts again from 0 (a gap from there is retention's, and is
    accepted as usual). An offset stored without an id (before ids were kept) is taken as is."""
    offsets: dict[TopicPartition, int] = {}
    recreated: set[TopicPartition] = set()
    for tp, (offset, topic_id) in stored.items():
        current = topic_ids.get(tp[0])
        if topic_id is not None and current is not None and topic_id != current:
            offsets[tp] = 0
            recreated.add(tp)
        else:
            offsets[tp] = offset
    return offsets, recreated


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
    items: Sequence[T], attempt: Callable[[Sequence[T]], E | None]
) -> list[tuple[T, E]]:
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
