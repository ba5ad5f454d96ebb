from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from eventfleet.operator.conditions import (
    Condition,
    ConditionType,
    Phase,
    merge_conditions,
    phase_of,
    ready_condition,
)
from eventfleet.operator.spec import TopicSpec, invalid_spec_message, parse_spec
from eventfleet.operator.topics import (
    DLQ_PARTITIONS,
    DlqTopicPlan,
    ObservedTopic,
    TopicClaim,
    cluster_key,
    conflicting_claims,
    plan_dlq_topic,
    plan_topic,
)

SPEC = TopicSpec(partitions=6, replication_factor=1, config={"retention.ms": "604800000"})


def test_missing_topic_is_created() -> None:
    assert plan_topic(SPEC, None).create


def test_matching_topic_is_in_sync_whatever_other_config_kafka_reports() -> None:
    observed = ObservedTopic(6, 1, {"retention.ms": "604800000", "cleanup.policy": "delete"})
    assert plan_topic(SPEC, observed).in_sync


def test_partitions_grow() -> None:
    plan = plan_topic(SPEC, ObservedTopic(3, 1, {"retention.ms": "604800000"}))
    assert plan.grow_to == 6
    assert not plan.refusals


def test_partition_decrease_and_replication_change_are_refused_with_reasons() -> None:
    plan = plan_topic(SPEC, ObservedTopic(12, 3, {"retention.ms": "604800000"}))
    assert plan.grow_to is None
    assert any("cannot shrink from 12 to 6" in r for r in plan.refusals)
    assert any("replicationFactor 1 differs from the topic's 3" in r for r in plan.refusals)


def test_config_drift_is_corrected_key_by_key() -> None:
    plan = plan_topic(SPEC, ObservedTopic(6, 1, {"retention.ms": "1000"}))
    assert plan.set_config == {"retention.ms": "604800000"}


def claim(owner: str, spec: TopicSpec, bootstrap: str = "k1:9092,k2:9092") -> TopicClaim:
    return TopicClaim(owner, bootstrap, "player.events.raw", spec)


def test_agreeing_claims_do_not_conflict() -> None:
    assert conflicting_claims(claim("ns/a", SPEC), [claim("ns/b", SPEC)]) == []


def test_disagreeing_claims_conflict_and_name_the_other_resource() -> None:
    other = TopicSpec(partitions=3, config={"retention.ms": "1"})
    clashes = conflicting_claims(claim("ns/a", SPEC), [claim("ns/b", other), claim("ns/a", other)])
    assert clashes == ["ns/b (partitions 3, retention.ms=1)"]


def test_claims_on_another_cluster_or_topic_do_not_conflict() -> None:
    other = TopicSpec(partitions=3)
    assert conflicting_claims(claim("ns/a", SPEC), [claim("ns/b", other, "elsewhere:9092")]) == []
    assert cluster_key("b:1, A:2") == cluster_key("a:2,b:1")


def test_transition_time_changes_only_with_the_status() -> None:
    first = merge_conditions(
        [],
        [Condition.false(ConditionType.TOPIC_READY, "Creating", "creating")],
        now="t1",
        generation=1,
    )
    same = merge_conditions(
        first,
        [Condition.false(ConditionType.TOPIC_READY, "Creating", "still")],
        now="t2",
        generation=2,
    )
    assert same[0]["lastTransitionTime"] == "t1"
    assert same[0]["message"] == "still"
    assert same[0]["observedGeneration"] == 2
    flipped = merge_conditions(
        same, [Condition.true(ConditionType.TOPIC_READY, "Created")], now="t3", generation=2
    )
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_conditions_keep_a_stable_order_and_untouched_ones() -> None:
    merged = merge_conditions(
        [{"type": "Custom", "status": "True"}],
        [
            Condition.true(ConditionType.READY, "AllReady"),
            Condition.true(ConditionType.TOPIC_READY, "Created"),
        ],
        now="t",
        generation=1,
    )
    assert [c["type"] for c in merged] == ["TopicReady", "Ready", "Custom"]


def conditions(**status: str) -> list[dict[str, Any]]:
    reasons = {"True": "Ok", "False": "Failing"}
    return [
        {
            "type": kind,
            "status": value,
            "reason": reasons.get(value, "Pending"),
            "message": f"{kind} says {value}",
        }
        for kind, value in status.items()
    ]


@pytest.mark.parametrize(
    ("given", "paused", "phase"),
    [
        ({}, False, Phase.PENDING),
        ({"TopicReady": "True"}, False, Phase.PROVISIONING),
        (
            {"TopicReady": "True", "SchemaReady": "True", "DeploymentAvailable": "False"},
            False,
            Phase.PROVISIONING,
        ),
        (
            {"TopicReady": "True", "SchemaReady": "True", "DeploymentAvailable": "True"},
            False,
            Phase.RUNNING,
        ),
        (
            {
                "TopicReady": "True",
                "SchemaReady": "True",
                "DeploymentAvailable": "True",
                "AutoscalerHealthy": "False",
            },
            False,
            Phase.DEGRADED,
        ),
        (
            {"TopicReady": "False", "SchemaReady": "True", "DeploymentAvailable": "True"},
            False,
            Phase.DEGRADED,
        ),
        ({"TopicReady": "True"}, True, Phase.PAUSED),
    ],
)
def test_phase(given: dict[str, str], *, paused: bool, phase: Phase) -> None:
    assert phase_of(conditions(**given), paused=paused) == phase


def test_fatal_reasons_fail_the_resource() -> None:
    failing = [{"type": "TopicReady", "status": "False", "reason": "ResourceConflict"}]
    assert phase_of(failing, paused=False) == Phase.FAILED


def test_ready_names_the_first_missing_piece() -> None:
    ready = ready_condition(conditions(TopicReady="True", SchemaReady="False"))
    assert ready.status == "False"
    assert ready.reason == "SchemaNotReady"
    assert ready.message == "SchemaReady says False"
    assert (
        ready_condition(
            conditions(TopicReady="True", SchemaReady="True", DeploymentAvailable="True")
        ).status
        == "True"
    )


def test_a_missing_dlq_topic_is_created_beside_a_managed_topic() -> None:
    main = TopicSpec(partitions=12, replication_factor=3, config={"retention.ms": "1000"})
    plan = plan_dlq_topic(main, None)
    assert plan.create == TopicSpec(partitions=DLQ_PARTITIONS, replication_factor=3)
    assert not plan.missing


def test_an_existing_dlq_topic_is_left_as_it_is_whatever_its_settings() -> None:
    shared = ObservedTopic(
        partitions=40, replication_factor=1, config={"cleanup.policy": "compact"}
    )
    assert plan_dlq_topic(SPEC, shared) == DlqTopicPlan()
    assert plan_dlq_topic(None, shared) == DlqTopicPlan()


def test_a_missing_dlq_topic_is_only_reported_when_topics_are_not_managed() -> None:
    assert plan_dlq_topic(None, None) == DlqTopicPlan(missing=True)


def test_a_missing_dlq_topic_does_not_hold_the_consumers_back() -> None:
    given = conditions(TopicReady="True", SchemaReady="True", DeploymentAvailable="True")
    given.append({"type": "DlqTopicReady", "status": "False", "reason": "DlqTopicMissing"})
    assert phase_of(given, paused=False) == Phase.RUNNING
    assert ready_condition(given).status == "True"


def test_the_dlq_topic_must_not_be_the_topic_consumed() -> None:
    raw: dict[str, Any] = {
        "mode": "logger",
        "kafka": {"bootstrapServers": "kafka:9092", "topic": "player.events"},
        "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
        "processing": {"dlqTopic": "player.events"},
    }
    with pytest.raises(ValidationError) as refused:
        parse_spec(raw)
    assert "processing.dlqTopic must differ from kafka.topic" in invalid_spec_message(refused.value)
    raw["processing"] = {"dlqTopic": "player.events.dlq"}
    assert parse_spec(raw).processing.dlq_topic == "player.events.dlq"
