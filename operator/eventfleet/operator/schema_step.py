"""The schema step of a reconcile: the migrations applied, the sink (a mode's tables in one
database) claimed for this EventConsumer, and a recreated topic reported."""

from __future__ import annotations

import logging

import psycopg2
from kubernetes.client.exceptions import ApiException

from eventfleet.consumer import migrate
from eventfleet.operator import kafka_admin, kube
from eventfleet.operator.builders import Owner, sink_owner
from eventfleet.operator.conditions import Condition, ConditionType
from eventfleet.operator.kafka_auth import KafkaConnection
from eventfleet.operator.outcome import Outcome, Report
from eventfleet.operator.spec import EventConsumerSpec

log = logging.getLogger("eventfleet.operator.reconcile")


def reconcile_schema(
    owner: Owner,
    spec: EventConsumerSpec,
    connection: KafkaConnection | None,
    report: Report,
    outcome: Outcome,
) -> None:
    ref = spec.postgres.dsn_secret_ref
    try:
        dsn = kube.secret_value(owner.namespace, ref.name, ref.key)
    except kube.SecretUnavailableError as error:
        outcome.add(
            Condition.false(ConditionType.SCHEMA_READY, "SecretMissing", str(error)), retry=True
        )
        return
    try:
        applied = migrate.apply(dsn, spec.mode)
    except migrate.MigrationError as error:
        unreachable = isinstance(error.__cause__, psycopg2.OperationalError)
        reason = "DatabaseUnreachable" if unreachable else "MigrationFailed"
        # The DSN may hold a password: the message names the failure, never the DSN.
        message = str(error).replace(dsn, "<dsn>")
        if not unreachable:
            report("Warning", reason, message)
        outcome.add(Condition.false(ConditionType.SCHEMA_READY, reason, message), retry=True)
        return
    version = migrate.schema_version(migrate.for_mode(spec.mode))
    outcome.schema_version = version
    if not claim_sink(owner, spec, dsn, report, outcome):
        return
    if connection is not None:
        report_recreated_topic(spec, connection, dsn, report)
    if applied:
        report(
            "Normal",
            "SchemaMigrated",
            "applied " + ", ".join(m.label for m in applied) + f" (schema version {version})",
        )
    outcome.add(
        Condition.true(
            ConditionType.SCHEMA_READY, "Migrated", f"{spec.mode} schema at version {version}"
        )
    )


def claim_sink(
    owner: Owner, spec: EventConsumerSpec, dsn: str, report: Report, outcome: Outcome
) -> bool:
    """Make this EventConsumer the one writer of its mode's tables in its database (the sink),
    or say which other one is. A recorded owner that no longer exists (deleted, or renamed:
    deleted and created under another name) is taken over, and its progress continues."""
    me = migrate.SinkOwner(
        sink_owner(owner), owner.uid, spec.consumer_group(owner.namespace, owner.name)
    )
    try:
        found = migrate.claim_sink(dsn, spec.mode, me)
        previous = found.owner
        if previous != me.owner and not _owner_exists(previous):
            found = migrate.claim_sink(dsn, spec.mode, me, take_over_from=previous)
            if found.owner == me.owner:
                report(
                    "Normal",
                    "SinkAdopted",
                    f"the {spec.mode} tables of this database were written by {previous}, "
                    "which no longer exists: their progress continues here",
                )
    except migrate.MigrationError as error:
        message = str(error).replace(dsn, "<dsn>")
        outcome.add(
            Condition.false(ConditionType.SCHEMA_READY, "SinkUnclaimed", message), retry=True
        )
        return False
    if found.owner != me.owner:
        message = (
            f"EventConsumer {found.owner} already writes the {spec.mode} tables of this "
            "database; a second writer would count every event twice. Point this one at "
            "another database, or delete the other"
        )
        outcome.sink_conflict = found.owner
        report("Warning", "SinkConflict", message)
        outcome.add(
            Condition.false(ConditionType.SCHEMA_READY, "SinkConflict", message), retry=True
        )
        return False
    return True


def report_recreated_topic(
    spec: EventConsumerSpec, connection: KafkaConnection, dsn: str, report: Report
) -> None:
    """A Warning Event when the sink's stored progress counts in another incarnation of the
    topic than the one Kafka has now (it was deleted and created again, e.g. with
    deletionPolicy Delete and a re-apply). The consumers notice it too and read the new topic
    from offset 0; this says so where an admin looks. Best effort: unreadable means silent."""
    kafka = spec.kafka
    try:
        current = kafka_admin.topic_id(connection, kafka.topic)
        stored = migrate.stored_topic_ids(dsn, spec.mode, kafka.topic) if current else set()
    except (kafka_admin.KafkaUnavailableError, migrate.MigrationError) as error:
        log.info("cannot compare topic ids", extra={"error": str(error).replace(dsn, "<dsn>")})
        return
    if stored and current not in stored:
        report(
            "Warning",
            "TopicRecreated",
            f"topic {kafka.topic} was deleted and created again since the {spec.mode} tables "
            "recorded their progress: the consumers read the new topic from its beginning, "
            "and count each of its events once",
        )


def _owner_exists(recorded: str) -> bool:
    """Whether the EventConsumer a sink records as its writer (namespace/name) still exists.
    An unreadable answer counts as existing: a sink is never taken over on a guess."""
    namespace, _, name = recorded.partition("/")
    if not namespace or not name:
        return False
    try:
        return kube.get_consumer(namespace, name) is not None
    except ApiException:
        return True
