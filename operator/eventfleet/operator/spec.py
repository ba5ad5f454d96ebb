"""The EventConsumer spec as the operator reads it: frozen pydantic models with the CRD's
defaults. Pure (no Kubernetes client): the CRD in crds/ is the API's source of truth, and
tests/unit/operator/test_crd.py keeps the two in step (fields, defaults, enums, ranges).

The API server already refused most bad input through the CRD schema and its CEL rules; what
reaches `EventConsumerSpec.model_validate` and still fails (an old object written before a rule
existed, a hand-edited status) becomes a SpecInvalid condition, never a crash loop.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eventfleet.contract.names import (
    BOARDS,
    DEFAULT_TOPIC,
    PERIODS,
    TOPIC_PATTERN,
    Board,
    Mode,
    Period,
)

GROUP: Final = "eventfleet.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "eventconsumers"
KIND: Final = "EventConsumer"

SECRET_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # noqa: S105 - a name pattern, no secret
SECRET_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a key pattern, no secret


class DeletionPolicy(enum.StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class _Spec(BaseModel):
    # populate_by_name: tests and builders may use snake_case; the API speaks camelCase.
    # extra="ignore": the API server already prunes fields the CRD does not know, so an unknown
    # field here can only be a newer CRD than this operator (an upgrade in progress); ignoring it
    # keeps existing EventConsumers running instead of failing them all as SpecInvalid.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class SecretKeyRef(_Spec):
    name: Annotated[str, Field(pattern=SECRET_NAME_PATTERN, max_length=253)]
    key: Annotated[str, Field(pattern=SECRET_KEY_PATTERN, max_length=253)]


class SecretRef(_Spec):
    name: Annotated[str, Field(pattern=SECRET_NAME_PATTERN, max_length=253)]


class KafkaSpec(_Spec):
    bootstrap_servers: Annotated[str, Field(alias="bootstrapServers", min_length=1)]
    topic: Annotated[str, Field(pattern=TOPIC_PATTERN)] = DEFAULT_TOPIC
    consumer_group: Annotated[
        str | None, Field(alias="consumerGroup", min_length=1, max_length=255)
    ] = None
    auth_secret_ref: Annotated[SecretRef | None, Field(alias="authSecretRef")] = None


class TopicSpec(_Spec):
    partitions: Annotated[int, Field(ge=1, le=10_000)] = 3
    replication_factor: Annotated[int, Field(alias="replicationFactor", ge=1, le=32)] = 1
    config: dict[str, str] = Field(default_factory=dict)
    deletion_policy: Annotated[DeletionPolicy, Field(alias="deletionPolicy")] = (
        DeletionPolicy.RETAIN
    )


class PostgresSpec(_Spec):
    dsn_secret_ref: Annotated[SecretKeyRef, Field(alias="dsnSecretRef")]


class RedisSpec(_Spec):
    url_secret_ref: Annotated[SecretKeyRef, Field(alias="urlSecretRef")]
    stats_db: Annotated[int, Field(alias="statsDb", ge=0, le=15)] = 0
    leaderboard_db: Annotated[int, Field(alias="leaderboardDb", ge=0, le=15)] = 1


class ReplicasSpec(_Spec):
    min: Annotated[int, Field(ge=0, le=1000)] = 1
    max: Annotated[int, Field(ge=1, le=1000)] = 6
    # What `kubectl scale` sets (the scale subresource): used when autoscaling is off or paused.
    count: Annotated[int | None, Field(ge=0, le=1000)] = None

    @model_validator(mode="after")
    def _min_at_most_max(self) -> ReplicasSpec:
        if self.min > self.max:
            raise ValueError(f"replicas.min ({self.min}) must not exceed replicas.max ({self.max})")
        return self


class AutoscalingSpec(_Spec):
    enabled: bool = True
    lag_per_replica: Annotated[int, Field(alias="lagPerReplica", ge=1)] = 1000
    activation_lag: Annotated[int, Field(alias="activationLag", ge=0)] = 0
    poll_interval_seconds: Annotated[int, Field(alias="pollIntervalSeconds", ge=5, le=3600)] = 15
    scale_up_stabilization_seconds: Annotated[
        int, Field(alias="scaleUpStabilizationSeconds", ge=0, le=3600)
    ] = 0
    scale_down_stabilization_seconds: Annotated[
        int, Field(alias="scaleDownStabilizationSeconds", ge=0, le=86_400)
    ] = 300
    max_scale_up_step: Annotated[int, Field(alias="maxScaleUpStep", ge=1, le=1000)] = 4
    max_scale_down_step: Annotated[int, Field(alias="maxScaleDownStep", ge=1, le=1000)] = 2
    cap_at_partitions: Annotated[bool, Field(alias="capAtPartitions")] = True
    cap_at_partitions_with_lag: Annotated[bool, Field(alias="capAtPartitionsWithLag")] = False
    # Replicas to run while lag cannot be read; unset = hold the current count.
    fallback_replicas: Annotated[int | None, Field(alias="fallbackReplicas", ge=0, le=1000)] = None


class ProcessingSpec(_Spec):
    batch_size: Annotated[int, Field(alias="batchSize", ge=1, le=100_000)] = 1000
    batch_timeout_ms: Annotated[int, Field(alias="batchTimeoutMs", ge=1, le=60_000)] = 100
    dlq_topic: Annotated[str | None, Field(alias="dlqTopic", pattern=TOPIC_PATTERN)] = None
    # stats, leaderboard: an event_id counted within this many hours is not counted again.
    dedup_window_hours: Annotated[int, Field(alias="dedupWindowHours", ge=1, le=8760)] = 168
    # Dead letters older than this are deleted (`eventfleet dlq` inspects and replays them).
    dlq_retention_days: Annotated[int, Field(alias="dlqRetentionDays", ge=1, le=3650)] = 30


class LeaderboardSpec(_Spec):
    boards: Annotated[tuple[Board, ...], Field(min_length=1)] = BOARDS
    periods: Annotated[tuple[Period, ...], Field(min_length=1)] = PERIODS
    top_n: Annotated[int, Field(alias="topN", ge=1, le=10_000)] = 100


class EventConsumerSpec(_Spec):
    mode: Mode
    image: Annotated[str | None, Field(min_length=1)] = None
    kafka: KafkaSpec
    topic: TopicSpec | None = None  # present = the operator manages the topic
    postgres: PostgresSpec
    redis: RedisSpec | None = None
    replicas: ReplicasSpec = Field(default_factory=ReplicasSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    processing: ProcessingSpec = Field(default_factory=ProcessingSpec)
    leaderboard: LeaderboardSpec = Field(default_factory=LeaderboardSpec)
    # Kubernetes ResourceRequirements, passed to the container as given.
    resources: dict[str, Any] = Field(default_factory=dict)
    paused: bool = False

    @model_validator(mode="after")
    def _redis_where_needed(self) -> EventConsumerSpec:
        if self.mode in ("stats", "leaderboard") and self.redis is None:
            raise ValueError(f"spec.redis is required for mode {self.mode}")
        return self

    def consumer_group(self, namespace: str, name: str) -> str:
        """The Kafka consumer group: given, or derived so that two CRs never share one."""
        return self.kafka.consumer_group or f"eventfleet.{namespace}.{name}"

    @property
    def autoscaled(self) -> bool:
        return self.autoscaling.enabled and not self.paused


def parse_spec(spec: Mapping[str, Any]) -> EventConsumerSpec:
    """An EventConsumer's spec as kopf or the API delivers it; raises pydantic's ValidationError."""
    return EventConsumerSpec.model_validate(dict(spec))


def invalid_spec_message(error: ValidationError) -> str:
    """The SpecInvalid message: each failure as `spec.<path>: <why>`, without pydantic's
    "Value error, " prefix and documentation links."""
    return "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
        if e["loc"]
        else e["msg"].removeprefix("Value error, ")
        for e in error.errors(include_url=False)
    )
