"""The DLQ topic step of a reconcile (`processing.dlqTopic`): created where the operator manages
topics, only checked where it does not; what to do is topics.plan_dlq_topic's decision.

Its condition, DlqTopicReady, does not hold the consumers back (dead letters are kept in
PostgreSQL either way): a missing DLQ topic is a Warning Event (DlqTopicMissing) and a recheck.
The DLQ topic is never deleted by the operator, whatever the deletionPolicy: it holds the
evidence of what failed, and other EventConsumers may share it.
"""

from __future__ import annotations

from eventfleet.operator import kafka_admin
from eventfleet.operator.conditions import Condition, ConditionType
from eventfleet.operator.kafka_auth import KafkaConnection
from eventfleet.operator.outcome import Outcome, Report
from eventfleet.operator.spec import EventConsumerSpec
from eventfleet.operator.topics import TopicPlan, plan_dlq_topic


def reconcile_dlq_topic(
    spec: EventConsumerSpec, connection: KafkaConnection, report: Report, outcome: Outcome
) -> None:
    topic = spec.processing.dlq_topic
    if topic is None:  # said, so that a DlqTopicReady of a DLQ topic since unset does not linger
        outcome.add(
            Condition.true(
                ConditionType.DLQ_TOPIC_READY, "NotConfigured", "processing.dlqTopic is unset"
            )
        )
        return
    try:
        plan = plan_dlq_topic(spec.topic, kafka_admin.describe_topic(connection, topic))
        if plan.create is not None:
            kafka_admin.apply_topic_plan(connection, topic, plan.create, TopicPlan(create=True))
            message = (
                f"created DLQ topic {topic}: {plan.create.partitions} partition(s), "
                f"replicationFactor {plan.create.replication_factor}"
            )
            report("Normal", "DlqTopicCreated", message)
            outcome.add(Condition.true(ConditionType.DLQ_TOPIC_READY, "Created", message))
        elif plan.missing:
            message = (
                f"DLQ topic {topic} does not exist and spec.topic is unset, so the operator will "
                "not create it; dead letters are kept in PostgreSQL only until it exists"
            )
            report("Warning", "DlqTopicMissing", message)
            outcome.add(
                Condition.false(ConditionType.DLQ_TOPIC_READY, "DlqTopicMissing", message),
                retry=True,
            )
        else:
            outcome.add(
                Condition.true(ConditionType.DLQ_TOPIC_READY, "Exists", f"DLQ topic {topic} exists")
            )
    except kafka_admin.KafkaUnavailableError as error:
        refused = isinstance(error, kafka_admin.KafkaAuthFailedError)
        reason = "KafkaAuthFailed" if refused else "KafkaUnreachable"
        outcome.add(Condition.false(ConditionType.DLQ_TOPIC_READY, reason, str(error)), retry=True)
