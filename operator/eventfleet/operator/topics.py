"""Topic management decisions, pure: from the desired TopicSpec and what Kafka reports to a plan.

Kafka can grow a topic's partitions but never shrink them, and a replication change needs a
reassignment the operator does not do: both are refused with a reason instead of attempted.
Configuration is compared only for the keys the spec names (Kafka reports dozens of defaults);
those drifted are set back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from eventfleet.operator.spec import TopicSpec


@dataclass(frozen=True, slots=True)
class ObservedTopic:
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TopicPlan:
    create: bool = False
    grow_to: int | None = None  # new partition count
    set_config: Mapping[str, str] = field(default_factory=dict)  # drifted keys, desired values
    refusals: tuple[str, ...] = ()  # what the spec asks and Kafka cannot do

    @property
    def in_sync(self) -> bool:
        return not (self.create or self.grow_to or self.set_config or self.refusals)


def plan_topic(desired: TopicSpec, observed: ObservedTopic | None) -> TopicPlan:
    if observed is None:
        return TopicPlan(create=True)
    refusals = []
    grow_to = None
    if desired.partitions > observed.partitions:
        grow_to = desired.partitions
    elif desired.partitions < observed.partitions:
        refusals.append(
            f"partitions cannot shrink from {observed.partitions} to {desired.partitions}: "
            "Kafka cannot remove partitions (recreate the topic to lower them)"
        )
    if desired.replication_factor != observed.replication_factor:
        refusals.append(
            f"replicationFactor {desired.replication_factor} differs from the topic's "
            f"{observed.replication_factor}: changing it needs a partition reassignment, which "
            "the operator does not perform"
        )
    drift = {
        key: value for key, value in desired.config.items() if observed.config.get(key) != value
    }
    return TopicPlan(grow_to=grow_to, set_config=drift, refusals=tuple(refusals))


# Dead letters are few and read in order: one partition is enough, and Kafka can grow it later.
DLQ_PARTITIONS: Final = 1


@dataclass(frozen=True, slots=True)
class DlqTopicPlan:
    create: TopicSpec | None = None  # the DLQ topic to create
    missing: bool = False  # absent, and the operator does not manage topics here


def plan_dlq_topic(main: TopicSpec | None, observed: ObservedTopic | None) -> DlqTopicPlan:
    """What to do about `processing.dlqTopic`, given the main topic's spec (None: topics are not
    managed here) and what Kafka reports of the DLQ topic.

    A missing one is created where the operator manages topics, with DLQ_PARTITIONS partitions,
    the main topic's replication factor and Kafka's default configuration. An existing one is
    left as it is, whatever its settings (never shrunk or reconfigured: it may be shared, or
    made by hand). Without spec.topic it is only checked.
    """
    if observed is not None:
        return DlqTopicPlan()
    if main is None:
        return DlqTopicPlan(missing=True)
    return DlqTopicPlan(
        create=TopicSpec(partitions=DLQ_PARTITIONS, replication_factor=main.replication_factor)
    )


@dataclass(frozen=True, slots=True)
class TopicClaim:
    """One EventConsumer's wish for a topic: who, and with which settings."""

    owner: str  # namespace/name
    bootstrap: str
    topic: str
    spec: TopicSpec


def conflicting_claims(mine: TopicClaim, others: Sequence[TopicClaim]) -> list[str]:
    """Other EventConsumers that manage the same topic on the same cluster with other settings.

    Agreeing claims are fine (several consumers may declare the one topic they share); a
    disagreement would make two reconcilers fight, so both report ResourceConflict instead.
    """
    clashes = []
    where = (cluster_key(mine.bootstrap), mine.topic)
    for other in others:
        if other.owner == mine.owner or (cluster_key(other.bootstrap), other.topic) != where:
            continue
        differences = _differences(mine.spec, other.spec)
        if differences:
            clashes.append(f"{other.owner} ({', '.join(differences)})")
    return sorted(clashes)


def cluster_key(bootstrap: str) -> frozenset[str]:
    """One cluster however its bootstrap list is written ("b:9092,a:9092" == "a:9092, b:9092")."""
    return frozenset(part.strip().lower() for part in bootstrap.split(",") if part.strip())


def _differences(a: TopicSpec, b: TopicSpec) -> list[str]:
    found = []
    if a.partitions != b.partitions:
        found.append(f"partitions {b.partitions}")
    if a.replication_factor != b.replication_factor:
        found.append(f"replicationFactor {b.replication_factor}")
    for key in sorted(set(a.config) | set(b.config)):
        if key in a.config and key in b.config and a.config[key] != b.config[key]:
            found.append(f"{key}={b.config[key]}")
    return found
