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

from eventfleet.contract.events import DEFAULT_MAX_EVENT_BYTES
from eventfleet.contract.names import (
    BOARDS,
    DEFAULT_TOPIC,
    PERIODS,
    TOPIC_PATTERN,
    Board,
    LogLevel,
    Mode,
    Period,
)

GROUP: Final = "eventfleet.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "eventconsumers"
KIND: Final = "EventConsumer"

SECRET_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # noqa: S105 - a name pattern, no secret
SECRET_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a key pattern, no secret
LABEL_VALUE_PATTERN: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]


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
    # Every wait stays under the consumer's 60 s liveness window (see consumer settings).
    lock_timeout_seconds: Annotated[int, Field(alias="lockTimeoutSeconds", ge=1, le=30)] = 5
    statement_timeout_seconds: Annotated[
        int, Field(alias="statementTimeoutSeconds", ge=1, le=45)
    ] = 30
    idle_in_transaction_timeout_seconds: Annotated[
        int, Field(alias="idleInTransactionTimeoutSeconds", ge=1, le=3600)
    ] = 60


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
    # Larger records are dead letters (event_too_large); the gateway's own limit is 1 MiB at most.
    max_event_bytes: Annotated[int, Field(alias="maxEventBytes", ge=256, le=16 * 1024 * 1024)] = (
        DEFAULT_MAX_EVENT_BYTES
    )
    # Events stamped further than this in the future are dead letters (a client clock gone wrong).
    max_future_skew_seconds: Annotated[
        int, Field(alias="maxFutureSkewSeconds", ge=0, le=86_400)
    ] = 300
    # The longest wait between retries while PostgreSQL, Redis or Kafka cannot be reached.
    max_backoff_seconds: Annotated[int, Field(alias="maxBackoffSeconds", ge=1, le=300)] = 30
    # How often retention and partition upkeep run.
    maintenance_interval_seconds: Annotated[
        int, Field(alias="maintenanceIntervalSeconds", ge=1, le=86_400)
    ] = 600


class LoggerSpec(_Spec):
    # Days of events kept in the events table (0 keeps everything).
    retention_days: Annotated[int, Field(alias="retentionDays", ge=0, le=36_500)] = 30
    # Daily partitions of the events table are created this many days ahead.
    partitions_ahead_days: Annotated[int, Field(alias="partitionsAheadDays", ge=1, le=60)] = 3


class LeaderboardSpec(_Spec):
    boards: Annotated[tuple[Board, ...], Field(min_length=1)] = BOARDS
    periods: Annotated[tuple[Period, ...], Field(min_length=1)] = PERIODS
    top_n: Annotated[int, Field(alias="topN", ge=1, le=10_000)] = 100
    # Daily boards older than this many days, and weekly ones older than this many weeks, are
    # deleted.
    daily_keep_days: Annotated[int, Field(alias="dailyKeepDays", ge=1, le=3650)] = 7
    weekly_keep_weeks: Annotated[int, Field(alias="weeklyKeepWeeks", ge=1, le=520)] = 5


class ConfigMapRef(_Spec):
    name: Annotated[str, Field(pattern=SECRET_NAME_PATTERN, max_length=253)]
    optional: bool = False


class ConfigMapEnvSource(_Spec):
    """One `envFrom` entry of the consumer container: only ConfigMaps (Secrets go by reference
    through the fields that name them)."""

    config_map_ref: Annotated[ConfigMapRef, Field(alias="configMapRef")]
    prefix: Annotated[str | None, Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")] = None


class PodTemplateSpec(_Spec):
    """Where and how the consumer pods run: passed into the Deployment's pod template as given
    (the Kubernetes API validates the objects), merged with the operator's own settings by
    placement.py."""

    node_selector: Annotated[dict[str, str], Field(alias="nodeSelector")] = Field(
        default_factory=dict
    )
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] = Field(default_factory=dict)
    topology_spread_constraints: Annotated[
        tuple[dict[str, Any], ...], Field(alias="topologySpreadConstraints")
    ] = ()
    priority_class_name: Annotated[
        str | None, Field(alias="priorityClassName", pattern=SECRET_NAME_PATTERN, max_length=253)
    ] = None
    image_pull_secrets: Annotated[tuple[SecretRef, ...], Field(alias="imagePullSecrets")] = ()
    service_account_name: Annotated[
        str | None, Field(alias="serviceAccountName", pattern=SECRET_NAME_PATTERN, max_length=253)
    ] = None
    pod_labels: Annotated[dict[str, LabelValue], Field(alias="podLabels")] = Field(
        default_factory=dict
    )
    pod_annotations: Annotated[dict[str, str], Field(alias="podAnnotations")] = Field(
        default_factory=dict
    )
    security_context: Annotated[dict[str, Any], Field(alias="securityContext")] = Field(
        default_factory=dict
    )
    container_security_context: Annotated[
        dict[str, Any], Field(alias="containerSecurityContext")
    ] = Field(default_factory=dict)
    env_from: Annotated[tuple[ConfigMapEnvSource, ...], Field(alias="envFrom")] = ()


class DisruptionBudgetSpec(_Spec):
    enabled: bool = True
    max_unavailable: Annotated[int, Field(alias="maxUnavailable", ge=1, le=1000)] = 1


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
    logger: LoggerSpec = Field(default_factory=LoggerSpec)
    leaderboard: LeaderboardSpec = Field(default_factory=LeaderboardSpec)
    log_level: Annotated[LogLevel, Field(alias="logLevel")] = "INFO"
    pod_template: Annotated[PodTemplateSpec, Field(alias="podTemplate")] = Field(
        default_factory=PodTemplateSpec
    )
    disruption_budget: Annotated[DisruptionBudgetSpec, Field(alias="podDisruptionBudget")] = Field(
        default_factory=DisruptionBudgetSpec
    )
    # Kubernetes ResourceRequirements, passed to the container as given.
    resources: dict[str, Any] = Field(default_factory=dict)
    paused: bool = False

    @model_validator(mode="after")
    def _redis_where_needed(self) -> EventConsumerSpec:
        if self.mode in ("stats", "leaderboard") and self.redis is None:
            raise ValueError(f"spec.redis is required for mode {self.mode}")
        return self

    @model_validator(mode="after")
    def _dlq_is_another_topic(self) -> EventConsumerSpec:
        # The consumers would read their own dead letters back and dead-letter them again.
        if self.processing.dlq_topic == self.kafka.topic:
            raise ValueError(
                f"processing.dlqTopic must differ from kafka.topic ({self.kafka.topic})"
            )
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
