"""The consumer Deployment built from a spec: pure, checked against the consumer's own settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventfleet.consumer.settings import ConsumerSettings, env_name, load_settings
from eventfleet.operator.builders import (
    Owner,
    build_deployment,
    deployment_name,
    label_value,
    owning_consumer_name,
    selector_string,
)
from eventfleet.operator.spec import EventConsumerSpec

OWNER = Owner(name="stats", namespace="gamemetrics", uid="1234-uid")


def spec(**changes: Any) -> EventConsumerSpec:
    raw: dict[str, Any] = {
        "mode": "stats",
        "kafka": {"bootstrapServers": "kafka:9092", "topic": "player.events.raw"},
        "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
        "redis": {"urlSecretRef": {"name": "cache", "key": "url"}, "statsDb": 8},
        "processing": {"batchSize": 500, "dlqTopic": "player.events.dlq"},
    }
    raw.update(changes)
    return EventConsumerSpec.model_validate(raw)


def deployment(given: EventConsumerSpec | None = None, replicas: int = 2) -> dict[str, Any]:
    return build_deployment(
        OWNER,
        given or spec(),
        replicas=replicas,
        image="eventfleet:0.1.0",
        group="eventfleet.gamemetrics.stats",
    )


def container(built: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = built["spec"]["template"]["spec"]["containers"][0]
    return found


def test_owned_by_the_event_consumer_with_a_matching_selector() -> None:
    built = deployment()
    assert built["metadata"]["name"] == deployment_name("stats") == "stats-consumer"
    (reference,) = built["metadata"]["ownerReferences"]
    assert reference["uid"] == "1234-uid"
    assert reference["controller"] is True
    assert reference["kind"] == "EventConsumer"
    selector = built["spec"]["selector"]["matchLabels"]
    assert selector.items() <= built["spec"]["template"]["metadata"]["labels"].items()
    assert selector_string(OWNER) == "eventfleet.dev/consumer=stats"
    assert built["spec"]["replicas"] == 2
    assert owning_consumer_name(built["metadata"]) == "stats"
    foreign = {"ownerReferences": [{**reference, "kind": "ReplicaSet"}]}
    assert owning_consumer_name(foreign) is None
    assert owning_consumer_name({}) is None


def test_every_variable_is_a_consumer_setting_and_the_consumer_accepts_them() -> None:
    env = container(deployment())["env"]
    names = {item["name"] for item in env}
    known = {env_name(field) for field in ConsumerSettings.model_fields}
    assert names <= known, names - known
    # Resolve the secret references with stand-in values and let the consumer validate.
    resolved = {item["name"]: item.get("value", f"redis://cache/{item['name']}") for item in env}
    resolved["EVENTFLEET_POSTGRES_DSN"] = "postgresql://db/x"
    settings = load_settings([], resolved)
    assert settings.mode == "stats"
    assert settings.batch_size == 500
    assert settings.group == "eventfleet.gamemetrics.stats"
    assert settings.dlq_topic == "player.events.dlq"
    assert (settings.redis_stats_db, settings.redis_leaderboard_db) == (8, 1)
    assert settings.sink_owner == "gamemetrics/stats"
    assert settings.dedup_window_hours == 168
    assert settings.dlq_retention_days == 30


def test_the_dedup_window_reaches_the_counting_modes_only() -> None:
    env = {i["name"]: i.get("value") for i in container(deployment(spec(processing={
        "dedupWindowHours": 24})))["env"]}  # fmt: skip
    assert env["EVENTFLEET_DEDUP_WINDOW_HOURS"] == "24"
    logger = {i["name"] for i in container(deployment(spec(mode="logger", redis=None)))["env"]}
    assert "EVENTFLEET_DEDUP_WINDOW_HOURS" not in logger


def test_the_dlq_retention_reaches_every_mode() -> None:
    for mode, redis in (("logger", None), ("stats", {"urlSecretRef": {"name": "r", "key": "url"}})):
        built = deployment(spec(mode=mode, redis=redis, processing={"dlqRetentionDays": 3}))
        env = {i["name"]: i.get("value") for i in container(built)["env"]}
        assert env["EVENTFLEET_DLQ_RETENTION_DAYS"] == "3"


def test_secrets_are_referenced_never_inlined() -> None:
    env = {item["name"]: item for item in container(deployment())["env"]}
    assert env["EVENTFLEET_POSTGRES_DSN"]["valueFrom"] == {
        "secretKeyRef": {"name": "db", "key": "dsn"}
    }
    assert env["EVENTFLEET_REDIS_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "cache", "key": "url"}
    }
    assert "value" not in env["EVENTFLEET_POSTGRES_DSN"]


def test_logger_gets_no_redis_and_leaderboard_gets_its_boards() -> None:
    logger = spec(mode="logger", redis=None)
    names = {item["name"] for item in container(deployment(logger))["env"]}
    assert "EVENTFLEET_REDIS_URL" not in names
    board = spec(
        mode="leaderboard", leaderboard={"boards": ["wins"], "periods": ["daily"], "topN": 10}
    )
    env = {i["name"]: i.get("value") for i in container(deployment(board))["env"]}
    assert env["EVENTFLEET_BOARDS"] == "wins"
    assert env["EVENTFLEET_PERIODS"] == "daily"
    assert env["EVENTFLEET_TOP_N"] == "10"


def test_probes_metrics_and_a_locked_down_container() -> None:
    built = deployment()
    main = container(built)
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["ports"][0]["containerPort"] == 8080
    assert main["command"] == ["eventfleet", "consumer"]
    assert main["securityContext"]["runAsNonRoot"] is True
    annotations = built["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8080"


def test_resources_from_the_spec_or_a_default() -> None:
    assert container(deployment())["resources"]["requests"]["cpu"] == "100m"
    custom = spec(resources={"limits": {"cpu": "2"}})
    assert container(deployment(custom))["resources"] == {"limits": {"cpu": "2"}}


def test_the_build_is_deterministic() -> None:
    assert json.dumps(deployment(), sort_keys=True) == json.dumps(deployment(), sort_keys=True)


@pytest.mark.parametrize("length", [1, 63, 64, 200])
def test_label_values_fit_and_stay_distinct(length: int) -> None:
    value = label_value("a" * length)
    assert len(value) <= 63
    if length > 63:
        assert value != label_value("a" * (length - 1) + "b")
