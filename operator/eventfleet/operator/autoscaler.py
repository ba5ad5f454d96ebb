"""The autoscaling loop: a thread that visits every watched EventConsumer each TICK_SECONDS.

Passes run in a pool, one at a time per object, and the loop never waits for them: an object
whose Kafka does not answer holds a worker for its timeouts, and its next passes are skipped
until it returns, while every other object goes on being visited each tick.

Once per pollIntervalSeconds it reads the consumer group's lag and asks scaling.decide for the
replica count; in between, it keeps the Deployment's replicas at what was decided and the status
in step with the Deployment, working from what the watches delivered and what it remembers
(registry.py): the decision's history, the Deployment body it applied last, when it last wrote a
measurement. A poll that changed nothing but the time makes no API request; the status gets its
measurement on change, when offsets moved, and every STATUS_HEARTBEAT (docs/operator.md).

Why a loop and not a kopf timer: kopf puts a finalizer on every object that has a timer, and a
finalizer without an operator leaves namespaces stuck terminating.

Each pass holds the object's lock (registry.object_locks), so it never interleaves with a
reconcile or the topic deletion of the same EventConsumer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from kubernetes.client.exceptions import ApiException

from eventfleet.operator import config, kafka_admin, kafka_auth, kube, metrics, registry
from eventfleet.operator.builders import Owner, deployment_name
from eventfleet.operator.conditions import Condition
from eventfleet.operator.outcome import Outcome, reporter
from eventfleet.operator.reconcile import initial_replicas, reconcile_deployment, reconcile_topic
from eventfleet.operator.scaling import (
    LagReading,
    Recommendation,
    ScalingDecision,
    ScalingPolicy,
    ceiling,
    decide,
    history_from_status,
    measure_lag,
)
from eventfleet.operator.spec import EventConsumerSpec
from eventfleet.operator.status import (
    autoscaler_condition,
    changed_beyond_the_time,
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
# A poll that found what the last one found writes nothing, except this long after the last
# write: lag.measuredAt is at most this old at idle (see docs/operator.md).
STATUS_HEARTBEAT: Final = timedelta(minutes=10)

Offsets = tuple[tuple[int, int, int | None], ...]  # per partition: (partition, end, committed)

_stop = threading.Event()
_loop_thread: threading.Thread | None = None


def start() -> None:
    global _loop_thread  # noqa: PLW0603 - one loop per operator process
    _stop.clear()
    _loop_thread = threading.Thread(target=_autoscaling_loop, name="autoscaling", daemon=True)
    _loop_thread.start()


def stop(timeout: float) -> None:
    """Ask the loop to stop, and wait up to `timeout` seconds for its current round to end."""
    _stop.set()
    if _loop_thread is not None:
        _loop_thread.join(timeout=timeout)


def _autoscaling_loop() -> None:
    """Each tick starts a pass for every EventConsumer whose previous pass has finished, and
    waits for none of them: a pass stuck on one object's Kafka (up to its timeouts) delays only
    that object, never another's decision."""
    workers = config.CONFIG.workers
    in_flight: dict[registry.Key, Future[None]] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autoscale") as pool:
        while not _stop.wait(TICK_SECONDS):
            for key in [key for key, future in in_flight.items() if future.done()]:
                del in_flight[key]
            for key, entry in registry.consumers():
                if key in in_flight:
                    metrics.PASSES_SKIPPED.inc()  # its last pass is still at work
                    continue
                in_flight[key] = pool.submit(_autoscale_safely, key, entry)


def _autoscale_safely(key: registry.Key, entry: registry.Known) -> None:
    try:
        with registry.object_locks.hold(key):
            if not registry.still_current(key, entry):
                return  # deleted while this pass waited: nothing of it may be created again
            autoscale(key[0], key[1], entry)
            if not registry.still_current(key, entry):
                # Deleted during the pass: its series, which the pass may have set again after
                # the watch handler removed them, go now.
                metrics.forget(*key)
    except ApiException as error:
        if error.status != 422:
            metrics.ERRORS.labels("autoscaling").inc()
            log.exception("%s/%s: autoscaling pass failed", *key)
            return
        # The API server refused the status (a schema limit): say so on the object, since the
        # status itself, the usual place to look, is what cannot change.
        metrics.ERRORS.labels("status").inc()
        reporter(key[0], key[1], entry.uid)(
            "Warning", "StatusWriteFailed", f"the API server refused the status: {error.body}"
        )
    except Exception:  # the loop must survive anything one object does
        metrics.ERRORS.labels("autoscaling").inc()
        log.exception("%s/%s: autoscaling pass failed", *key)


def autoscale(namespace: str, name: str, entry: registry.Known) -> None:
    """One pass for one EventConsumer: lag and decision when a poll is due, drift and status."""
    parsed = entry.parsed_spec()
    if parsed is None:
        return  # reported by reconcile
    owner = Owner(name, namespace, entry.uid)
    deployment = registry.seen_deployment(namespace, deployment_name(name))
    if deployment is None:
        return  # not delivered by the watch yet; reconcile creates it (and retries until it can)
    current = int(deployment.get("spec", {}).get("replicas") or 0)
    now = datetime.now(UTC)
    conditions: list[Condition] = []
    extra: dict[str, Any] = {}  # status fields besides the conditions
    target: int | None = None
    offsets: Offsets | None = None
    if _poll_due(entry, parsed, now):
        target, conditions, extra, offsets = _poll(owner, entry, parsed, current, now)
    polled = target is not None
    if target is None:  # between polls: keep what was decided (or what kubectl scale set)
        target = _target_between_polls(entry, parsed, current, namespace, name)
    entry.decided = target
    if not parsed.paused and (polled or target != current):
        # Server-side apply of the replica count, and (once per poll, as a safety net for the
        # Deployment watch) of the rest: a Secret rotated, an edit the watch handler did not
        # restore. Only when the Deployment differs from the one wanted (`seen`). Paused is
        # hands off: only a spec change (e.g. `kubectl scale ec`) reaches it, through reconcile.
        outcome = Outcome()
        reconcile_deployment(owner, parsed, replicas=target, outcome=outcome, seen=deployment)
        deployment = outcome.deployment or deployment
        conditions.extend(outcome.conditions)
    else:
        conditions.append(deployment_condition(deployment))
    extra.update(replica_counts(deployment))
    # A poll whose offsets moved, or the first one, or one a heartbeat after the last written,
    # writes what it measured; any other writes only when something besides the time changed.
    report_measurement = polled and (
        offsets != entry.offsets_written
        or entry.status_written is None
        or now - entry.status_written >= STATUS_HEARTBEAT
    )

    def compute(status: dict[str, Any]) -> dict[str, Any] | None:
        update = only_if_changed(
            status,
            status_patch(status, conditions, generation=None, paused=parsed.paused, extra=extra),
        )
        if update is None or not polled or report_measurement:
            return update
        return update if changed_beyond_the_time(status, update) else None

    wrote = kube.update_consumer_status(namespace, name, compute, seen=entry.status)
    if polled and wrote:
        entry.status_written, entry.offsets_written = now, offsets


def _poll(
    owner: Owner, entry: registry.Known, spec: EventConsumerSpec, current: int, now: datetime
) -> tuple[int, list[Condition], dict[str, Any], Offsets | None]:
    """The poll of a pass: topic drift, lag, the decision, its metrics and Event. Returns the
    replicas decided, the conditions and other status fields to report, and the offsets read."""
    namespace, name = owner.namespace, owner.name
    conditions: list[Condition] = []
    extra: dict[str, Any] = {}
    if spec.topic is not None and not spec.paused:
        # Level-triggered topic management: drift of the topic's configuration (or another
        # EventConsumer now claiming the topic differently) is found once per poll.
        topic_outcome = Outcome()
        # An invalid Kafka Secret was reported as an Event by reconcile: here only the condition.
        connection = kafka_auth.resolve_connection(
            namespace, spec, lambda *_: None, topic_outcome.add
        )
        if connection is not None:
            reconcile_topic(
                owner,
                spec,
                registry.topic_claims(spec),
                reporter(namespace, name, owner.uid),
                topic_outcome,
                connection=connection,
            )
        conditions.extend(topic_outcome.conditions)
    reading, offsets = _read_lag(spec, namespace, name)
    metrics.LAST_POLL.labels(namespace, name).set(now.timestamp())
    if entry.history is None:
        # The first poll since the operator started: the history the last one left in status,
        # as the watch delivered it (only the loop writes recommendations, and it has not yet).
        entry.history = history_from_status(entry.status.get("recommendations"))
    decision = _decision(spec, current, reading, entry.history, now)
    entry.history = decision.history
    target = decision.replicas
    extra["desiredReplicas"] = target
    extra["recommendations"] = recommendations_field(decision.history)
    if reading is not None:
        extra["lag"] = lag_field(reading, now)
        metrics.CONSUMER_LAG.labels(namespace, name).set(reading.total)
    conditions.append(autoscaler_condition(spec, decision))
    if target != current:
        extra["lastScale"] = last_scale_field(now, current, target, decision.reason)
        direction = "up" if target > current else "down"
        metrics.SCALE_ACTIONS.labels(namespace, name, direction).inc()
        reporter(namespace, name, owner.uid)(
            "Normal",
            f"Scaled{direction.capitalize()}",
            f"{current} -> {target} replicas: {decision.reason}",
        )
    metrics.DESIRED_REPLICAS.labels(namespace, name).set(target)
    if not spec.autoscaled:
        metrics.MAX_REPLICAS.remove(namespace, name)  # hands off: there is no ceiling to reach
    elif reading is not None:
        policy = ScalingPolicy.from_spec(spec.replicas, spec.autoscaling)
        metrics.MAX_REPLICAS.labels(namespace, name).set(ceiling(policy, reading))
    return target, conditions, extra, offsets


def _target_between_polls(
    entry: registry.Known, spec: EventConsumerSpec, current: int, namespace: str, name: str
) -> int:
    if entry.decided is not None and current == entry.decided:
        return current  # nothing moved it since
    # Read, not as seen: a status the watch has not caught up with could hold an older
    # decision, and applying that would undo the last scale until the next poll.
    state = kube.get_consumer(namespace, name) or {}
    return initial_replicas(spec, state.get("status") or {})


def _poll_due(entry: registry.Known, spec: EventConsumerSpec, now: datetime) -> bool:
    """Lag is read once per pollIntervalSeconds per EventConsumer (the loop ticks faster so
    that drift and readiness are seen quickly); a restarted operator polls at once."""
    interval = timedelta(seconds=spec.autoscaling.poll_interval_seconds)
    if entry.last_poll is not None and now - entry.last_poll < interval:
        return False
    entry.last_poll = now
    metrics.POLLS.inc()
    return True


def _read_lag(
    spec: EventConsumerSpec, namespace: str, name: str
) -> tuple[LagReading | None, Offsets | None]:
    """The lag, and the offsets it was measured from (partition, end, committed)."""
    group = spec.consumer_group(namespace, name)
    try:
        connection = kafka_auth.read_connection(namespace, spec)
        offsets = kafka_admin.group_offsets(connection, spec.kafka.topic, group)
    except (
        kafka_admin.KafkaUnavailableError,
        kafka_admin.TopicMissingError,
        kafka_auth.KafkaAuthInvalidError,
    ) as error:
        metrics.LAG_READ_FAILURES.inc()
        log.warning("%s/%s: lag unavailable: %s", namespace, name, error)
        return None, None
    moved = tuple((o.partition, o.high, o.committed) for o in offsets)
    return measure_lag(offsets), moved


def _decision(
    spec: EventConsumerSpec,
    current: int,
    reading: LagReading | None,
    history: Sequence[Recommendation],
    now: datetime,
) -> ScalingDecision:
    """The scaling decision of a poll (pure): the spec's fixed count when autoscaling is hands
    off, else scaling.decide from the lag and the previous decision's history."""
    if not spec.autoscaled:
        target = spec.replicas.count if spec.replicas.count is not None else current
        why = "paused" if spec.paused else "autoscaling disabled"
        return ScalingDecision(
            target, target, f"{why}: {target} replicas", healthy=reading is not None, history=()
        )
    policy = ScalingPolicy.from_spec(spec.replicas, spec.autoscaling)
    return decide(policy, current, reading, history, now)
