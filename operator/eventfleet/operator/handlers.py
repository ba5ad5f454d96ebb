"""kopf handlers: read, call a step or a pure decision, apply, patch status. Nothing else.

- create / update of spec / resume  -> reconcile: topic, schema, Deployment, status
- a timer every few seconds         -> autoscaling when a poll is due; Deployment drift and
                                        status kept in step in between
- changes of an owned Deployment    -> status (replicas, readiness) and drift restored at once
- delete with deletionPolicy Delete -> the topic is deleted; only such objects get a finalizer
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import kopf
from eventfleet.operator import kafka_admin, kube, metrics
from eventfleet.operator.builders import MANAGED_BY, Owner, deployment_name, selector_string
from eventfleet.operator.conditions import Condition, ConditionType
from eventfleet.operator.reconcile import (
    RETRY_SECONDS,
    Outcome,
    deployment_condition,
    initial_replicas,
    now_iso,
    reconcile_deployment,
    reconcile_schema,
    reconcile_topic,
    status_patch,
)
from eventfleet.operator.scaling import (
    LagReading,
    Recommendation,
    ScalingDecision,
    ScalingPolicy,
    decide,
    measure_lag,
)
from eventfleet.operator.spec import GROUP, KIND, PLURAL, VERSION, EventConsumerSpec
from eventfleet.operator.topics import TopicClaim, cluster_key
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

log = logging.getLogger(__name__)

TIMER_SECONDS: Final = 3.0
ANNOTATION_PREFIX: Final = GROUP


@dataclass(frozen=True)
class OperatorConfig:
    default_image: str = "eventfleet:0.1.0"


CONFIG = OperatorConfig()


def configure(config: OperatorConfig) -> None:
    global CONFIG  # noqa: PLW0603 - set once by the CLI before kopf starts
    CONFIG = config


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Silent watch hangs are kopf's most reported problem: bound every watch request.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # The CRD's structural schema prunes unknown status fields: keep kopf's bookkeeping in
    # annotations instead of status.kopf, which would be silently dropped.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/topic-cleanup"
    # Events are posted deliberately by the handlers, not for every log line.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "eventfleet-operator"
    settings.execution.max_workers = 16


# ---------------------------------------------------------------------------------------------
# Index of topic claims: which EventConsumers manage which topic, for conflict detection.


@kopf.index(GROUP, VERSION, PLURAL)
def topic_claims(
    *, name: str, namespace: str | None, spec: kopf.Spec, **_: Any
) -> dict[tuple[frozenset[str], str], TopicClaim]:
    try:
        parsed = EventConsumerSpec.model_validate(dict(spec))
    except ValidationError:
        return {}
    if parsed.topic is None:
        return {}
    claim = TopicClaim(
        f"{namespace}/{name}", parsed.kafka.bootstrap_servers, parsed.kafka.topic, parsed.topic
    )
    return {(cluster_key(claim.bootstrap), claim.topic): claim}


def _claims_for(
    index: kopf.Index[Any, TopicClaim] | None, spec: EventConsumerSpec
) -> list[TopicClaim]:
    if index is None:  # kopf always passes its indices; a plain call may not
        return []
    key = (cluster_key(spec.kafka.bootstrap_servers), spec.kafka.topic)
    return list(index.get(key, []))


def _reporter(body: kopf.Body) -> Any:
    def report(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message)
        (log.warning if kind == "Warning" else log.info)(
            "%s/%s %s: %s", body.metadata.namespace, body.metadata.name, reason, message
        )

    return report


def _parse(spec: Mapping[str, Any]) -> EventConsumerSpec:
    return EventConsumerSpec.model_validate(dict(spec))


def _invalid(error: ValidationError) -> str:
    return "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
        if e["loc"]
        else e["msg"].removeprefix("Value error, ")
        for e in error.errors(include_url=False)
    )


# ---------------------------------------------------------------------------------------------
# Reconcile


@kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile-resume")
@kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile-create")
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", id="reconcile-update")
def reconcile(
    *,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    topic_claims: kopf.Index[Any, TopicClaim] | None = None,
    **_: Any,
) -> None:
    namespace = namespace or "default"
    report = _reporter(body)
    generation = int(meta.get("generation", 0))
    with metrics.RECONCILE_SECONDS.time():
        try:
            parsed = _parse(spec)
        except ValidationError as error:
            message = _invalid(error)
            report("Warning", "SpecInvalid", message)
            patch.status.update(
                status_patch(
                    status,
                    [],
                    generation=generation,
                    paused=False,
                    ready=Condition.false(ConditionType.READY, "SpecInvalid", message),
                )
            )
            metrics.RECONCILES.labels("invalid").inc()
            raise kopf.PermanentError(message) from None

        owner = Owner(name, namespace, uid)
        group = parsed.consumer_group(namespace, name)
        outcome = Outcome()
        reconcile_topic(owner, parsed, _claims_for(topic_claims, parsed), report, outcome)
        reconcile_schema(owner, parsed, report, outcome)
        replicas = initial_replicas(parsed, status)
        reconcile_deployment(
            owner,
            parsed,
            replicas=replicas,
            image=parsed.image or CONFIG.default_image,
            group=group,
            outcome=outcome,
        )
        extra: dict[str, Any] = {
            "consumerGroup": group,
            "selector": selector_string(owner),
            "desiredReplicas": replicas,
        }
        if outcome.schema_version is not None:
            extra["schemaVersion"] = outcome.schema_version
        if outcome.deployment is not None:
            extra.update(_replica_counts(outcome.deployment))
        patch.status.update(
            status_patch(
                status, outcome.conditions, generation=generation, paused=parsed.paused, extra=extra
            )
        )
    if outcome.retry:
        metrics.RECONCILES.labels("retry").inc()
        raise kopf.TemporaryError("; ".join(outcome.retry), delay=RETRY_SECONDS)
    metrics.RECONCILES.labels("ok").inc()


def _replica_counts(deployment: Mapping[str, Any]) -> dict[str, int]:
    found = deployment.get("status") or {}
    return {
        "replicas": int(found.get("replicas") or 0),
        "readyReplicas": int(found.get("readyReplicas") or 0),
    }


# ---------------------------------------------------------------------------------------------
# Autoscaling, drift and status between reconciles


@kopf.timer(
    GROUP, VERSION, PLURAL, interval=TIMER_SECONDS, initial_delay=TIMER_SECONDS, id="autoscale"
)
def autoscale(
    *,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    namespace = namespace or "default"
    try:
        parsed = _parse(spec)
    except ValidationError:
        return  # reported by reconcile
    owner = Owner(name, namespace, uid)
    deployment = kube.read_deployment(namespace, deployment_name(name))
    if deployment is None:
        return  # reconcile creates it (and retries until it can)
    current = int(deployment.get("spec", {}).get("replicas") or 0)
    now = datetime.now(UTC)
    conditions: list[Condition] = []
    extra: dict[str, Any] = _replica_counts(deployment)
    target = current
    if _poll_due(memo, parsed, now):
        reading = _read_lag(parsed, namespace, name)
        decision = _decision(parsed, current, reading, status, now)
        target = decision.replicas
        extra["desiredReplicas"] = target
        extra["recommendations"] = [
            {"time": _iso(r.time), "replicas": r.replicas} for r in decision.history
        ]
        if reading is not None:
            extra["lag"] = {
                "total": reading.total,
                "partitions": reading.partitions,
                "partitionsWithLag": reading.partitions_with_lag,
                "measuredAt": _iso(now),
            }
            metrics.CONSUMER_LAG.labels(namespace, name).set(reading.total)
        conditions.append(_autoscaler_condition(parsed, decision))
        if target != current:
            extra["lastScale"] = {
                "time": _iso(now),
                "from": current,
                "to": target,
                "reason": decision.reason,
            }
            direction = "up" if target > current else "down"
            metrics.SCALE_ACTIONS.labels(direction).inc()
            kopf.event(
                body,
                type="Normal",
                reason=f"Scaled{direction.capitalize()}",
                message=f"{current} -> {target} replicas: {decision.reason}",
            )
        metrics.DESIRED_REPLICAS.labels(namespace, name).set(target)
    elif isinstance(status.get("desiredReplicas"), int):
        target = status["desiredReplicas"]
    if not parsed.paused or target != current:
        # Server-side apply: restores hand edits of owned fields and sets the replica count.
        outcome = Outcome()
        reconcile_deployment(
            owner,
            parsed,
            replicas=target,
            image=parsed.image or CONFIG.default_image,
            group=parsed.consumer_group(namespace, name),
            outcome=outcome,
        )
        if outcome.deployment is not None:
            extra.update(_replica_counts(outcome.deployment))
        conditions.extend(outcome.conditions)
    else:
        conditions.append(deployment_condition(deployment))
    patch.status.update(
        status_patch(status, conditions, generation=None, paused=parsed.paused, extra=extra)
    )


def _poll_due(memo: kopf.Memo, spec: EventConsumerSpec, now: datetime) -> bool:
    """Lag is read once per pollIntervalSeconds per EventConsumer (the timer ticks faster so
    that drift and readiness are seen quickly); the operator's restart polls at once."""
    last = memo.get("last_poll")
    interval = timedelta(seconds=spec.autoscaling.poll_interval_seconds)
    if isinstance(last, datetime) and now - last < interval:
        return False
    memo["last_poll"] = now
    return True


def _read_lag(spec: EventConsumerSpec, namespace: str, name: str) -> LagReading | None:
    group = spec.consumer_group(namespace, name)
    try:
        offsets = kafka_admin.group_offsets(spec.kafka.bootstrap_servers, spec.kafka.topic, group)
    except (kafka_admin.KafkaUnavailableError, kafka_admin.TopicMissingError) as error:
        metrics.LAG_READ_FAILURES.inc()
        log.warning("%s/%s: lag unavailable: %s", namespace, name, error)
        return None
    return measure_lag(offsets)


def _decision(
    spec: EventConsumerSpec,
    current: int,
    reading: LagReading | None,
    status: Mapping[str, Any],
    now: datetime,
) -> ScalingDecision:
    if not spec.autoscaled:
        target = spec.replicas.count if spec.replicas.count is not None else current
        why = "paused" if spec.paused else "autoscaling disabled"
        return ScalingDecision(
            target,
            target,
            f"{why}: {target} replicas (replicas.count)",
            healthy=reading is not None,
            history=(),
        )
    history = tuple(
        Recommendation(datetime.fromisoformat(r["time"].replace("Z", "+00:00")), r["replicas"])
        for r in status.get("recommendations") or []
        if isinstance(r, Mapping) and "time" in r and "replicas" in r
    )
    policy = ScalingPolicy.from_spec(spec.replicas, spec.autoscaling)
    return decide(policy, current, reading, history, now)


def _autoscaler_condition(spec: EventConsumerSpec, decision: ScalingDecision) -> Condition:
    kind = ConditionType.AUTOSCALER_HEALTHY
    if not decision.healthy:
        return Condition.false(kind, "LagUnavailable", decision.reason)
    if spec.paused:
        return Condition.true(kind, "Paused", decision.reason)
    if not spec.autoscaling.enabled:
        return Condition.true(kind, "Disabled", decision.reason)
    return Condition.true(kind, "Measuring", decision.reason)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------------
# Owned Deployments: a change (pods becoming ready, a hand edit, a deletion) is reflected at once.


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
def deployment_event(
    *,
    type: str,  # noqa: A002 - kopf's keyword
    body: kopf.Body,
    namespace: str | None,
    **_: Any,
) -> None:
    namespace = namespace or "default"
    owners = [
        ref
        for ref in body.metadata.get("ownerReferences", [])
        if ref.get("kind") == KIND and ref.get("apiVersion") == f"{GROUP}/{VERSION}"
    ]
    if not owners:
        return
    owner_name = owners[0]["name"]
    api = client.CustomObjectsApi(kube._api())
    try:
        consumer: dict[str, Any] = api.get_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, namespace, PLURAL, owner_name
        )
    except ApiException as error:
        if error.status == 404:
            return  # the owner is gone: the garbage collector takes the Deployment
        raise
    if consumer.get("metadata", {}).get("deletionTimestamp"):
        return
    try:
        parsed = _parse(consumer.get("spec", {}))
    except ValidationError:
        return
    status = consumer.get("status") or {}
    owner = Owner(owner_name, namespace, consumer["metadata"]["uid"])
    outcome = Outcome()
    if type == "DELETED" or not parsed.paused:
        reconcile_deployment(
            owner,
            parsed,
            replicas=initial_replicas(parsed, status),
            image=parsed.image or CONFIG.default_image,
            group=parsed.consumer_group(namespace, owner_name),
            outcome=outcome,
        )
    deployment = outcome.deployment or dict(body)
    update = status_patch(
        status,
        outcome.conditions or [deployment_condition(deployment)],
        generation=None,
        paused=parsed.paused,
        extra=_replica_counts(deployment),
    )
    if all(
        status.get(key) == value for key, value in update.items() if key != "conditions"
    ) and _same_conditions(status, update):
        return
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, owner_name, {"status": update}
    )


def _same_conditions(status: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
    def key(conditions: Any) -> list[tuple[Any, ...]]:
        return sorted(
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in conditions or []
        )

    return key(status.get("conditions")) == key(update.get("conditions"))


# ---------------------------------------------------------------------------------------------
# Deletion: owned Deployments go with the garbage collector; the topic only on request.


def _deletes_topic(*, spec: kopf.Spec, **_: Any) -> bool:
    topic = spec.get("topic") or {}
    return isinstance(topic, Mapping) and topic.get("deletionPolicy") == "Delete"


@kopf.on.delete(GROUP, VERSION, PLURAL, when=_deletes_topic, id="delete-topic")
def delete_topic(
    *,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    spec: kopf.Spec,
    topic_claims: kopf.Index[Any, TopicClaim] | None = None,
    **_: Any,
) -> None:
    namespace = namespace or "default"
    parsed = _parse(spec)
    others = [c for c in _claims_for(topic_claims, parsed) if c.owner != f"{namespace}/{name}"]
    report = _reporter(body)
    if others:
        report(
            "Normal",
            "TopicKept",
            f"topic {parsed.kafka.topic} kept: still managed by "
            + ", ".join(sorted(c.owner for c in others)),
        )
        return
    try:
        kafka_admin.delete_topic(parsed.kafka.bootstrap_servers, parsed.kafka.topic)
    except kafka_admin.KafkaUnavailableError as error:
        raise kopf.TemporaryError(
            f"cannot delete topic yet: {error}", delay=RETRY_SECONDS
        ) from error
    report("Normal", "TopicDeleted", f"deleted topic {parsed.kafka.topic} (deletionPolicy Delete)")


__all__ = ["OperatorConfig", "configure", "now_iso"]
