"""One reconcile of an EventConsumer, step by step: topic, DLQ topic, schema, Deployment,
status; and the I/O of the other handlers (an owned Deployment changed, the topic deleted).

Each step does its I/O, asks a pure function what to do, and records a Condition (plus whether
it wants a retry) in the Outcome, from which status.py builds the status patch. The handlers and
the autoscaling loop call these; nothing here knows about kopf except the events it posts through
the `report` callback: the handlers turn an Outcome's retries and the errors raised here into
kopf's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from eventfleet.operator import config, kafka_admin, kube, registry
from eventfleet.operator.budget_step import reconcile_disruption_budget
from eventfleet.operator.builders import (
    Owner,
    build_deployment,
    deployment_name,
    selector_string,
)
from eventfleet.operator.conditions import Condition, ConditionType
from eventfleet.operator.dlq_step import reconcile_dlq_topic
from eventfleet.operator.kafka_auth import KafkaConnection, kafka_auth_refusal, resolve_connection
from eventfleet.operator.outcome import Outcome, Report
from eventfleet.operator.schema_step import reconcile_schema
from eventfleet.operator.secret_checksum import referenced_checksum
from eventfleet.operator.spec import EventConsumerSpec, parse_spec
from eventfleet.operator.status import (
    deployment_condition,
    only_if_changed,
    replica_counts,
    status_patch,
)
from eventfleet.operator.topics import TopicClaim, TopicPlan, conflicting_claims, plan_topic

log = logging.getLogger(__name__)


def reconcile_consumer(
    owner: Owner,
    spec: EventConsumerSpec,
    *,
    generation: int,
    claims: Sequence[TopicClaim],
    report: Report,
) -> Outcome:
    """Topic, schema and Deployment brought in line with `spec`, then the status written."""
    group = spec.consumer_group(owner.namespace, owner.name)
    outcome = Outcome()
    # None: the Kafka Secret is missing or malformed (TopicReady says why); no consumers are
    # deployed with it, since they could only fail to start.
    connection = resolve_connection(owner.namespace, spec, report, outcome.add)
    if connection is not None:
        reconcile_topic(owner, spec, claims, report, outcome, connection=connection)
        reconcile_dlq_topic(spec, connection, report, outcome)
    reconcile_schema(owner, spec, connection, report, outcome)
    current = kube.get_consumer(owner.namespace, owner.name) or {}
    replicas = initial_replicas(spec, current.get("status") or {})
    if outcome.sink_conflict is None and connection is not None:
        reconcile_deployment(owner, spec, replicas=replicas, outcome=outcome)
        if budget_failed := reconcile_disruption_budget(owner, spec, report):
            outcome.retry.append(budget_failed)
    else:
        replicas = 0  # a second writer of a sink gets no consumers
    extra: dict[str, Any] = {
        "consumerGroup": group,
        "selector": selector_string(owner),
        "desiredReplicas": replicas,
    }
    if outcome.schema_version is not None:
        extra["schemaVersion"] = outcome.schema_version
    if outcome.deployment is not None:
        extra.update(replica_counts(outcome.deployment))
    kube.update_consumer_status(
        owner.namespace,
        owner.name,
        lambda status: status_patch(
            status, outcome.conditions, generation=generation, paused=spec.paused, extra=extra
        ),
    )
    return outcome


def mark_spec_invalid(namespace: str, name: str, *, generation: int, message: str) -> None:
    """Ready=False (SpecInvalid) in the status; the other conditions stay as they were."""
    ready = Condition.false(ConditionType.READY, "SpecInvalid", message)
    kube.update_consumer_status(
        namespace,
        name,
        lambda status: status_patch(status, [], generation=generation, paused=False, ready=ready),
    )


def reconcile_topic(
    owner: Owner,
    spec: EventConsumerSpec,
    claims: Sequence[TopicClaim],
    report: Report,
    outcome: Outcome,
    *,
    connection: KafkaConnection,
) -> None:
    kafka = spec.kafka
    try:
        if spec.topic is None:  # someone else manages the topic: only check that it exists
            exists = kafka_admin.describe_topic(connection, kafka.topic) is not None
            if exists:
                outcome.add(
                    Condition.true(
                        ConditionType.TOPIC_READY,
                        "External",
                        f"topic {kafka.topic} exists (not managed here)",
                    )
                )
            else:
                outcome.add(
                    Condition.false(
                        ConditionType.TOPIC_READY,
                        "TopicMissingError",
                        f"topic {kafka.topic} does not exist and spec.topic "
                        "is unset, so the operator will not create it",
                    ),
                    retry=True,
                )
            return
        mine = TopicClaim(
            f"{owner.namespace}/{owner.name}", kafka.bootstrap_servers, kafka.topic, spec.topic
        )
        clashes = conflicting_claims(mine, claims)
        if clashes:
            message = (
                f"topic {kafka.topic} is also managed with other settings by {'; '.join(clashes)}"
            )
            report("Warning", "ResourceConflict", message)
            outcome.add(Condition.false(ConditionType.TOPIC_READY, "ResourceConflict", message))
            return
        observed = kafka_admin.describe_topic(connection, kafka.topic)
        plan = plan_topic(spec.topic, observed)
        if not plan.in_sync and (plan.create or plan.grow_to or plan.set_config):
            kafka_admin.apply_topic_plan(connection, kafka.topic, spec.topic, plan)
            report("Normal", "TopicUpdated", _describe_plan(kafka.topic, plan))
        if plan.refusals:
            message = "; ".join(plan.refusals)
            report("Warning", "TopicChangeRefused", message)
            outcome.add(Condition.false(ConditionType.TOPIC_READY, "ChangeRefused", message))
            return
        outcome.add(
            Condition.true(
                ConditionType.TOPIC_READY,
                "InSync",
                f"topic {kafka.topic}: {spec.topic.partitions} partitions",
            )
        )
    except kafka_admin.KafkaUnavailableError as error:
        refused = isinstance(error, kafka_admin.KafkaAuthFailedError)
        reason = "KafkaAuthFailed" if refused else "KafkaUnreachable"
        outcome.add(Condition.false(ConditionType.TOPIC_READY, reason, str(error)), retry=True)


def _describe_plan(topic: str, plan: TopicPlan) -> str:
    if plan.create:
        return f"created topic {topic}"
    parts = []
    if plan.grow_to:
        parts.append(f"grew to {plan.grow_to} partitions")
    if plan.set_config:
        parts.append("set " + ", ".join(f"{k}={v}" for k, v in sorted(plan.set_config.items())))
    return f"topic {topic}: {'; '.join(parts)}"


def initial_replicas(spec: EventConsumerSpec, status: Mapping[str, Any]) -> int:
    """Replicas for the Deployment: `kubectl scale`'s count when the autoscaler is hands off,
    else the autoscaler's last decision, else replicas.min."""
    if not spec.autoscaled and spec.replicas.count is not None:
        return spec.replicas.count
    decided = status.get("desiredReplicas")
    return decided if isinstance(decided, int) else spec.replicas.min


def reconcile_deployment(
    owner: Owner,
    spec: EventConsumerSpec,
    *,
    replicas: int,
    outcome: Outcome,
    seen: Mapping[str, Any] | None = None,
) -> None:
    """Apply the Deployment `spec` wants. With `seen` (the Deployment as the watch delivered
    it), nothing is applied when this process already applied that very body and the
    Deployment's spec has not changed since: such an apply would change nothing, and at
    hundreds of EventConsumers those no-op applies were a fifth of the API server's load."""
    if (refused := kafka_auth_refusal(owner.namespace, spec)) is not None:
        outcome.add(refused, retry=True)  # consumers could only fail to start: left as they are
        return
    desired = build_deployment(
        owner,
        spec,
        replicas=replicas,
        image=spec.image or config.CONFIG.default_image,
        group=spec.consumer_group(owner.namespace, owner.name),
        secrets_checksum=referenced_checksum(owner.namespace, spec),
    )
    key = (owner.namespace, deployment_name(owner.name))
    fingerprint = hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()
    if seen is not None and registry.already_applied(key, fingerprint, seen):
        outcome.deployment = dict(seen)
        outcome.add(deployment_condition(seen))
        return
    try:
        applied = kube.apply(desired)
    except ApiException as error:
        outcome.add(
            Condition.false(
                ConditionType.DEPLOYMENT_AVAILABLE,
                "ApplyFailed",
                f"applying Deployment {deployment_name(owner.name)}: {error.reason}",
            ),
            retry=True,
        )
        return
    registry.record_applied(key, fingerprint, applied)
    outcome.deployment = applied
    outcome.add(deployment_condition(applied))


# ---------------------------------------------------------------------------------------------
# An owned Deployment changed


def owning_consumer(
    namespace: str, name: str
) -> tuple[Owner, EventConsumerSpec, Mapping[str, Any]] | None:
    """The EventConsumer a Deployment belongs to, read fresh: its Owner, spec and status. None
    when it is gone or going (the garbage collector takes the Deployment) or its spec is invalid
    (reported by reconcile)."""
    consumer = kube.get_consumer(namespace, name)
    if consumer is None or consumer.get("metadata", {}).get("deletionTimestamp"):
        return None
    try:
        parsed = parse_spec(consumer.get("spec", {}))
    except ValidationError:
        return None
    owner = Owner(name, namespace, consumer["metadata"]["uid"])
    return owner, parsed, consumer.get("status") or {}


def write_deployment_status(
    owner: Owner,
    spec: EventConsumerSpec,
    deployment: Mapping[str, Any],
    conditions: Sequence[Condition],
    *,
    seen: Mapping[str, Any] | None = None,
) -> None:
    """The Deployment's replica counts in the status, with `conditions` (or, when the Deployment
    was not applied, the condition it reports); no write when nothing changed, and no read
    either when nothing changed in `seen` (the status as the watch delivered it)."""
    updates = list(conditions) or [deployment_condition(deployment)]
    kube.update_consumer_status(
        owner.namespace,
        owner.name,
        lambda status: only_if_changed(
            status,
            status_patch(
                status,
                updates,
                generation=None,
                paused=spec.paused,
                extra=replica_counts(deployment),
            ),
        ),
        seen=seen,
    )


# ---------------------------------------------------------------------------------------------
# Deletion


def delete_topic(
    owner: Owner,
    spec: EventConsumerSpec,
    connection: KafkaConnection,
    readers: Sequence[str],
    report: Report,
) -> None:
    """Delete the topic unless another EventConsumer still reads it (`readers`: every watched
    one on this topic and cluster, managing it or not). Raises kafka_admin.KafkaUnavailableError
    when Kafka cannot be reached (the handler retries, for a bounded time)."""
    mine = f"{owner.namespace}/{owner.name}"
    others = sorted(reader for reader in readers if reader != mine)
    if others:
        report(
            "Normal",
            "TopicKept",
            f"topic {spec.kafka.topic} kept: still read by " + ", ".join(others),
        )
        return
    kafka_admin.delete_topic(connection, spec.kafka.topic)
    report("Normal", "TopicDeleted", f"deleted topic {spec.kafka.topic} (deletionPolicy Delete)")
