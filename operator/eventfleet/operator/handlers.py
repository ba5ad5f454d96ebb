"""kopf handlers: read, call a step or a pure decision, apply, write status. Nothing else.

- every EventConsumer event          -> the registry the autoscaling loop walks (registry.py),
                                        the status metrics (metrics.py)
- startup / cleanup                  -> kopf's settings; the autoscaling loop (autoscaler.py)
                                        started and stopped
- create / update of spec / resume  -> reconcile: topic, schema, Deployment, status
                                        (reconcile.py, schema_step.py)
- changes of an owned Deployment     -> status (replicas, readiness) and drift restored at once
- delete with deletionPolicy Delete  -> the topic is deleted; only such objects get a finalizer

The autoscaling loop is a thread, not a kopf timer: kopf puts a finalizer on every object that has
a timer, and a finalizer without an operator leaves namespaces stuck terminating. Here only
objects whose deletion has work to do (deleting the topic) carry one.

Status is written through kube.update_consumer_status (fresh read, under that function's
per-object lock), never with kopf's patch, so the three writers (reconcile, the loop, Deployment
events) never overwrite each other's conditions. Reconcile and the topic deletion also hold
registry.object_locks, as each pass of the loop and the Deployment event handler do; every
writer of the Deployment applies the replicas the loop last decided.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from eventfleet.operator import (
    autoscaler,
    config,
    kafka_admin,
    kafka_auth,
    kube,
    metrics,
    registry,
    standby,
)
from eventfleet.operator import reconcile as steps  # `reconcile` is the handler's name here
from eventfleet.operator.builders import MANAGED_BY, Owner, owning_consumer_name
from eventfleet.operator.outcome import RETRY_SECONDS, Outcome, reporter
from eventfleet.operator.spec import (
    GROUP,
    PLURAL,
    VERSION,
    EventConsumerSpec,
    invalid_spec_message,
    parse_spec,
)

ANNOTATION_PREFIX: Final = GROUP
EXECUTOR_THREADS: Final = 16  # kopf's threads for the handlers (reconciles, Deployment events)
CONSISTENCY_TIMEOUT_SECONDS: Final = 60.0  # kopf: 5 s


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
    """Every EventConsumer event feeds the registry the autoscaling loop walks, and the
    metrics that mirror its status."""
    namespace = namespace or "default"
    gone = type == "DELETED" or bool(meta.get("deletionTimestamp"))
    registry.record_consumer((namespace, name), gone=gone, uid=uid, spec=spec, status=status)
    if gone:
        metrics.forget(namespace, name)
    else:
        metrics.record_status(namespace, name, status)


# ---------------------------------------------------------------------------------------------
# Startup and shutdown


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
    settings.execution.max_workers = EXECUTOR_THREADS
    # After a handler, kopf waits this long for the watch to deliver its own annotation patch.
    # Past it, kopf takes an older body (the status written inside the handler) for current,
    # finds no last-handled configuration in it, and runs the creation handlers again. With
    # hundreds of EventConsumers applied at once, the next event waits for an executor thread
    # for longer than kopf's 5 s: most were created twice.
    settings.persistence.consistency_timeout = CONSISTENCY_TIMEOUT_SECONDS
    autoscaler.start()


@kopf.on.cleanup()
def cleanup(**_: Any) -> None:
    autoscaler.stop(timeout=30)
    kafka_admin.close_readers()
    standby.release()  # last: nothing of this replica acts any more


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
    report = reporter(namespace, name, uid)
    generation = int(meta.get("generation", 0))
    with registry.object_locks.hold((namespace, name)):
        with metrics.RECONCILE_SECONDS.time():
            try:
                parsed = parse_spec(spec)
            except ValidationError as error:
                message = invalid_spec_message(error)
                report("Warning", "SpecInvalid", message)
                steps.mark_spec_invalid(namespace, name, generation=generation, message=message)
                metrics.RECONCILES.labels("invalid").inc()
                raise kopf.PermanentError(message) from None
            outcome = steps.reconcile_consumer(
                Owner(name, namespace, uid),
                parsed,
                generation=generation,
                claims=registry.topic_claims(parsed),
                report=report,
            )
        if outcome.retry:
            metrics.RECONCILES.labels("retry").inc()
            metrics.ERRORS.labels("reconcile").inc()
            raise kopf.TemporaryError("; ".join(outcome.retry), delay=RETRY_SECONDS)
        metrics.RECONCILES.labels("ok").inc()


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
    owner_name = owning_consumer_name(body.metadata)
    if owner_name is None:
        return
    # The same lock as a pass of the loop: the watch event of the loop's own apply waits until
    # that pass has written its decision, instead of applying the decision before it.
    with registry.object_locks.hold((namespace, owner_name)):
        found = _owner_as_watched(namespace, owner_name) or steps.owning_consumer(
            namespace, owner_name
        )
        if found is None:
            return
        owner, parsed, owner_status = found
        replicas = steps.initial_replicas(parsed, owner_status)
        decided = registry.decided_replicas((namespace, owner_name))
        if parsed.autoscaled and decided is not None:
            replicas = decided  # fresher than a status the loop may be about to write
        outcome = Outcome()
        if type == "DELETED" or not parsed.paused:
            try:
                # A status change (pods becoming ready) or the watch event of an apply of
                # ours leaves the spec as applied: nothing to restore, no request.
                steps.reconcile_deployment(
                    owner,
                    parsed,
                    replicas=replicas,
                    outcome=outcome,
                    seen=None if type == "DELETED" else dict(body),
                )
            except ApiException as error:
                metrics.ERRORS.labels("deployment").inc()
                raise kopf.TemporaryError(
                    f"restoring the Deployment: {error.reason}", delay=RETRY_SECONDS
                ) from error
        steps.write_deployment_status(
            owner, parsed, outcome.deployment or dict(body), outcome.conditions, seen=owner_status
        )


def _owner_as_watched(
    namespace: str, name: str
) -> tuple[Owner, EventConsumerSpec, Mapping[str, Any]] | None:
    """The owning EventConsumer as its watch delivered it, without a GET (a Deployment event
    read it afresh each time: most of an EventConsumer's requests on its way to Ready). None
    when the watch has not delivered it, or its spec is invalid; the caller then reads it."""
    entry = registry.known((namespace, name))
    parsed = None if entry is None else entry.parsed_spec()
    if entry is None or parsed is None:
        return None
    return Owner(name, namespace, entry.uid), parsed, entry.status


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
    runtime: timedelta,
    **_: Any,
) -> None:
    """Delete the topic, retrying while Kafka cannot be reached; after the topic-deletion
    timeout, leave it behind with a Warning Event and let the EventConsumer go. A namespace
    stuck Terminating blocks everything in it, while a leftover topic is one command to remove
    by hand, so finishing wins over retrying forever."""
    namespace = namespace or "default"
    report = reporter(namespace, name, uid)
    # Held so that a pass of the loop still at work on this object finishes first (and the next
    # one sees the object gone) before the topic goes.
    with registry.object_locks.hold((namespace, name)):
        parsed = parse_spec(spec)
        try:
            connection = kafka_auth.read_connection(namespace, parsed)
            steps.delete_topic(
                Owner(name, namespace, uid),
                parsed,
                connection,
                registry.topic_readers(parsed),
                report,
            )
        except (kafka_auth.KafkaAuthInvalidError, kafka_admin.KafkaUnavailableError) as error:
            timeout = config.CONFIG.topic_deletion_timeout_seconds
            if runtime.total_seconds() >= timeout:
                report(
                    "Warning",
                    "TopicLeftBehind",
                    f"topic {parsed.kafka.topic} on {parsed.kafka.bootstrap_servers} was not "
                    f"deleted within {timeout:.0f}s ({error}): delete it by hand",
                )
                return
            raise kopf.TemporaryError(
                f"cannot delete topic yet: {error}", delay=RETRY_SECONDS
            ) from error
