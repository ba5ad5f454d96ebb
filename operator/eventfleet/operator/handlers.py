"""kopf handlers: read, call a step or a pure decision, apply, write status. Nothing else.

- create / update of spec / resume  -> reconcile: topic, schema, Deployment, status
- every EventConsumer event          -> the registry the autoscaling loop walks
- the autoscaling loop (a thread)    -> lag once per pollIntervalSeconds and the scaling decision;
                                        Deployment drift and readiness kept in step in between
- changes of an owned Deployment     -> status (replicas, readiness) and drift restored at once
- delete with deletionPolicy Delete  -> the topic is deleted; only such objects get a finalizer

Why a loop and not a kopf timer: kopf puts a finalizer on every object that has a timer, and a
finalizer without an operator leaves namespaces stuck terminating. Here only objects whose
deletion has work to do (deleting the topic) carry one.

Status is written through kube.update_consumer_status (fresh read, per-object lock), never with
kopf's patch, so the three writers never overwrite each other's conditions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from eventfleet.operator import kafka_admin, kube, metrics, registry
from eventfleet.operator.builders import MANAGED_BY, Owner, deployment_name, selector_string
from eventfleet.operator.conditions import Condition, ConditionType
from eventfleet.operator.reconcile import (
    RETRY_SECONDS,
    Outcome,
    initial_replicas,
    reconcile_deployment,
    reconcile_schema,
    reconcile_topic,
)
from eventfleet.operator.scaling import (
    LagReading,
    ScalingDecision,
    ScalingPolicy,
    decide,
    history_from_status,
    measure_lag,
)
from eventfleet.operator.spec import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    EventConsumerSpec,
    invalid_spec_message,
    parse_spec,
)
from eventfleet.operator.status import (
    autoscaler_condition,
    deployment_condition,
    lag_field,
    last_scale_field,
    only_if_changed,
    recommendations_field,
    replica_counts,
    status_patch,
)

log = logging.getLogger(__name__)

TICK_SECONDS: Final = 2.0  # how often the loop looks at each EventConsumer
ANNOTATION_PREFIX: Final = GROUP


@dataclass(frozen=True)
class OperatorConfig:
    default_image: str = "eventfleet:0.1.0"
    workers: int = 8  # EventConsumers handled in parallel by the autoscaling loop


CONFIG = OperatorConfig()


def configure(config: OperatorConfig) -> None:
    global CONFIG  # noqa: PLW0603 - set once by the CLI before kopf starts
    CONFIG = config


# ---------------------------------------------------------------------------------------------
# The registry, fed by the EventConsumer watch


@kopf.on.event(GROUP, VERSION, PLURAL)
def track(
    *,
    type: str,  # noqa: A002 - kopf's keyword
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    **_: Any,
) -> None:
    """Every EventConsumer event feeds the registry the autoscaling loop walks."""
    registry.record_consumer(
        (namespace or "default", name),
        gone=type == "DELETED" or bool(meta.get("deletionTimestamp")),
        uid=uid,
        spec=spec,
        status=status,
    )


def _reporter(namespace: str, name: str, uid: str) -> Any:
    def report(kind: str, reason: str, message: str) -> None:
        kube.post_event(namespace, name, uid, kind=kind, reason=reason, message=message)
        (log.warning if kind == "Warning" else log.info)(
            "%s/%s %s: %s", namespace, name, reason, message
        )

    return report


# ---------------------------------------------------------------------------------------------
# Startup and shutdown


_stop = threading.Event()
_loop_thread: threading.Thread | None = None


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """kopf connects with the same credentials as the rest of the operator (kube.credential_source:
    an explicit KUBECONFIG wins over a pod's service account)."""
    kube.load_credentials.cache_clear()  # kopf calls this again on 401: re-read rotated tokens
    configuration = kube.load_credentials()
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    # "Bearer <token>", or a bare token (RFC 7235 allows both).
    scheme, _space, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        trust_env=settings.networking.trust_env,
    )


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _loop_thread  # noqa: PLW0603 - one loop per operator process
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
    _stop.clear()
    _loop_thread = threading.Thread(target=_autoscaling_loop, name="autoscaling", daemon=True)
    _loop_thread.start()


@kopf.on.cleanup()
def cleanup(**_: Any) -> None:
    _stop.set()
    if _loop_thread is not None:
        _loop_thread.join(timeout=30)
    kafka_admin.close_readers()


# ---------------------------------------------------------------------------------------------
# Reconcile


@kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile-resume")
@kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile-create")
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", id="reconcile-update")
def reconcile(
    *,
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    meta: kopf.Meta,
    **_: Any,
) -> None:
    namespace = namespace or "default"
    with registry.object_locks.hold((namespace, name)):
        _reconcile(namespace, name, uid, spec, int(meta.get("generation", 0)))


def _reconcile(
    namespace: str, name: str, uid: str, spec: Mapping[str, Any], generation: int
) -> None:
    report = _reporter(namespace, name, uid)
    with metrics.RECONCILE_SECONDS.time():
        try:
            parsed = parse_spec(spec)
        except ValidationError as error:
            message = invalid_spec_message(error)
            report("Warning", "SpecInvalid", message)
            ready = Condition.false(ConditionType.READY, "SpecInvalid", message)
            kube.update_consumer_status(
                namespace,
                name,
                lambda status: status_patch(
                    status, [], generation=generation, paused=False, ready=ready
                ),
            )
            metrics.RECONCILES.labels("invalid").inc()
            raise kopf.PermanentError(message) from None

        owner = Owner(name, namespace, uid)
        group = parsed.consumer_group(namespace, name)
        outcome = Outcome()
        reconcile_topic(owner, parsed, registry.topic_claims(parsed), report, outcome)
        reconcile_schema(owner, parsed, report, outcome)
        current = kube.get_consumer(namespace, name) or {}
        replicas = initial_replicas(parsed, current.get("status") or {})
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
            extra.update(replica_counts(outcome.deployment))
        kube.update_consumer_status(
            namespace,
            name,
            lambda status: status_patch(
                status, outcome.conditions, generation=generation, paused=parsed.paused, extra=extra
            ),
        )
    if outcome.retry:
        metrics.RECONCILES.labels("retry").inc()
        metrics.ERRORS.labels("reconcile").inc()
        raise kopf.TemporaryError("; ".join(outcome.retry), delay=RETRY_SECONDS)
    metrics.RECONCILES.labels("ok").inc()


# ---------------------------------------------------------------------------------------------
# The autoscaling loop


def _autoscaling_loop() -> None:
    with ThreadPoolExecutor(max_workers=CONFIG.workers, thread_name_prefix="autoscale") as pool:
        while not _stop.wait(TICK_SECONDS):
            work = registry.consumers()
            futures = [pool.submit(_autoscale_safely, key, entry) for key, entry in work]
            for future in futures:
                future.result()


def _autoscale_safely(key: tuple[str, str], entry: registry.Known) -> None:
    try:
        with registry.object_locks.hold(key):
            if not registry.still_current(key, entry):
                return  # deleted while this pass waited: nothing of it may be created again
            autoscale(key[0], key[1], entry)
    except Exception:  # the loop must survive anything one object does
        metrics.ERRORS.labels("autoscaling").inc()
        log.exception("%s/%s: autoscaling pass failed", *key)


def autoscale(namespace: str, name: str, entry: registry.Known) -> None:
    """One pass for one EventConsumer: lag and decision when a poll is due, drift and status."""
    try:
        parsed = parse_spec(entry.spec)
    except ValidationError:
        return  # reported by reconcile
    owner = Owner(name, namespace, entry.uid)
    deployment = registry.seen_deployment(namespace, deployment_name(name))
    if deployment is None:
        return  # reconcile creates it (and retries until it can)
    current = int(deployment.get("spec", {}).get("replicas") or 0)
    now = datetime.now(UTC)
    conditions: list[Condition] = []
    extra: dict[str, Any] = {}
    target: int | None = None
    if _poll_due(entry, parsed, now):
        if parsed.topic is not None and not parsed.paused:
            # Level-triggered topic management: drift of the topic's configuration (or another
            # EventConsumer now claiming the topic differently) is found once per poll.
            topic_outcome = Outcome()
            reconcile_topic(
                owner,
                parsed,
                registry.topic_claims(parsed),
                _reporter(namespace, name, entry.uid),
                topic_outcome,
            )
            conditions.extend(topic_outcome.conditions)
        reading = _read_lag(parsed, namespace, name)
        # Read, not as seen: the decision's history must hold the last pass's recommendation.
        state = kube.get_consumer(namespace, name) or {}
        decision = _decision(parsed, current, reading, state.get("status") or {}, now)
        target = decision.replicas
        extra["desiredReplicas"] = target
        extra["recommendations"] = recommendations_field(decision.history)
        if reading is not None:
            extra["lag"] = lag_field(reading, now)
            metrics.CONSUMER_LAG.labels(namespace, name).set(reading.total)
        conditions.append(autoscaler_condition(parsed, decision))
        if target != current:
            extra["lastScale"] = last_scale_field(now, current, target, decision.reason)
            direction = "up" if target > current else "down"
            metrics.SCALE_ACTIONS.labels(direction).inc()
            _reporter(namespace, name, entry.uid)(
                "Normal",
                f"Scaled{direction.capitalize()}",
                f"{current} -> {target} replicas: {decision.reason}",
            )
        metrics.DESIRED_REPLICAS.labels(namespace, name).set(target)
    polled = target is not None
    if target is None:  # between polls: keep what was decided (or what kubectl scale set)
        if entry.decided is not None and current == entry.decided:
            target = current  # nothing moved it since
        else:
            # Read, not as seen: a status the watch has not caught up with could hold an older
            # decision, and applying that would undo the last scale until the next poll.
            state = kube.get_consumer(namespace, name) or {}
            target = initial_replicas(parsed, state.get("status") or {})
    entry.decided = target
    if not parsed.paused and (polled or target != current):
        # Server-side apply: sets the replica count, and (once per poll, as a safety net for
        # the Deployment watch) restores hand edits of owned fields. Paused is hands off: only
        # a spec change (e.g. `kubectl scale ec`) reaches the Deployment, through reconcile.
        outcome = Outcome()
        reconcile_deployment(
            owner,
            parsed,
            replicas=target,
            image=parsed.image or CONFIG.default_image,
            group=parsed.consumer_group(namespace, name),
            outcome=outcome,
        )
        deployment = outcome.deployment or deployment
        conditions.extend(outcome.conditions)
    else:
        conditions.append(deployment_condition(deployment))
    extra.update(replica_counts(deployment))
    kube.update_consumer_status(
        namespace,
        name,
        lambda status: only_if_changed(
            status,
            status_patch(status, conditions, generation=None, paused=parsed.paused, extra=extra),
        ),
        seen=entry.status,
    )


def _poll_due(entry: registry.Known, spec: EventConsumerSpec, now: datetime) -> bool:
    """Lag is read once per pollIntervalSeconds per EventConsumer (the loop ticks faster so
    that drift and readiness are seen quickly); a restarted operator polls at once."""
    interval = timedelta(seconds=spec.autoscaling.poll_interval_seconds)
    if entry.last_poll is not None and now - entry.last_poll < interval:
        return False
    entry.last_poll = now
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
            target, target, f"{why}: {target} replicas", healthy=reading is not None, history=()
        )
    history = history_from_status(status.get("recommendations"))
    policy = ScalingPolicy.from_spec(spec.replicas, spec.autoscaling)
    return decide(policy, current, reading, history, now)


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
    registry.record_deployment(
        (namespace, body.metadata.name), None if type == "DELETED" else dict(body)
    )
    owners = [
        ref
        for ref in body.metadata.get("ownerReferences", [])
        if ref.get("kind") == KIND and ref.get("apiVersion") == f"{GROUP}/{VERSION}"
    ]
    if not owners:
        return
    owner_name = owners[0]["name"]
    consumer = kube.get_consumer(namespace, owner_name)
    if consumer is None or consumer.get("metadata", {}).get("deletionTimestamp"):
        return  # the owner is gone: the garbage collector takes the Deployment
    try:
        parsed = parse_spec(consumer.get("spec", {}))
    except ValidationError:
        return
    owner = Owner(owner_name, namespace, consumer["metadata"]["uid"])
    outcome = Outcome()
    if type == "DELETED" or not parsed.paused:
        try:
            reconcile_deployment(
                owner,
                parsed,
                replicas=initial_replicas(parsed, consumer.get("status") or {}),
                image=parsed.image or CONFIG.default_image,
                group=parsed.consumer_group(namespace, owner_name),
                outcome=outcome,
            )
        except ApiException as error:
            metrics.ERRORS.labels("deployment").inc()
            raise kopf.TemporaryError(
                f"restoring the Deployment: {error.reason}", delay=RETRY_SECONDS
            ) from error
    deployment = outcome.deployment or dict(body)
    conditions = outcome.conditions or [deployment_condition(deployment)]
    kube.update_consumer_status(
        namespace,
        owner_name,
        lambda status: only_if_changed(
            status,
            status_patch(
                status,
                conditions,
                generation=None,
                paused=parsed.paused,
                extra=replica_counts(deployment),
            ),
        ),
    )


# ---------------------------------------------------------------------------------------------
# Deletion: owned Deployments go with the garbage collector; the topic only on request.


def _deletes_topic(*, spec: kopf.Spec, **_: Any) -> bool:
    topic = spec.get("topic") or {}
    return isinstance(topic, Mapping) and topic.get("deletionPolicy") == "Delete"


@kopf.on.delete(GROUP, VERSION, PLURAL, when=_deletes_topic, id="delete-topic")
def delete_topic(
    *,
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    **_: Any,
) -> None:
    namespace = namespace or "default"
    # Held so that a pass of the loop still at work on this object finishes first (and the next
    # one sees the object gone) before the topic goes.
    with registry.object_locks.hold((namespace, name)):
        _delete_topic(namespace, name, uid, spec)


def _delete_topic(namespace: str, name: str, uid: str, spec: Mapping[str, Any]) -> None:
    parsed = parse_spec(spec)
    others = [c for c in registry.topic_claims(parsed) if c.owner != f"{namespace}/{name}"]
    report = _reporter(namespace, name, uid)
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
