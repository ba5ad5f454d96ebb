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


# Consumer settings the operator decides itself (never a user's to tune through the spec).
OPERATOR_DECIDES = {"http_host", "http_port", "sink_owner"}


def _settings_of(built: dict[str, Any]) -> ConsumerSettings:
    env = container(built)["env"]
    resolved = {item["name"]: item.get("value", "redis://cache/0") for item in env}
    resolved["EVENTFLEET_POSTGRES_DSN"] = "postgresql://db/x"
    return load_settings([], resolved)


def test_every_consumer_setting_a_user_tunes_is_reachable_from_the_spec() -> None:
    """Each consumer setting is set by the Deployment for some mode (or decided by the operator):
    a new consumer flag without a spec field fails here."""
    reached: set[str] = set(OPERATOR_DECIDES)
    redis = {"urlSecretRef": {"name": "r", "key": "url"}}
    kafka = {"bootstrapServers": "k:9092", "authSecretRef": {"name": "kafka-user"}}
    for mode in ("logger", "stats", "leaderboard"):
        built = deployment(spec(mode=mode, redis=None if mode == "logger" else redis, kafka=kafka))
        names = {item["name"] for item in container(built)["env"]}
        reached |= {field for field in ConsumerSettings.model_fields if env_name(field) in names}
    assert set(ConsumerSettings.model_fields) - reached == set()


def test_tuning_fields_reach_the_consumer_settings() -> None:
    logger = spec(
        mode="logger",
        redis=None,
        logger={"retentionDays": 0, "partitionsAheadDays": 9},
        processing={
            "maxEventBytes": 4096,
            "maxFutureSkewSeconds": 60,
            "maxBackoffSeconds": 5,
            "maintenanceIntervalSeconds": 120,
        },
        logLevel="DEBUG",
    )
    settings = _settings_of(deployment(logger))
    assert (settings.retention_days, settings.partitions_ahead_days) == (0, 9)
    assert settings.max_event_bytes == 4096
    assert settings.max_future_skew_seconds == 60
    assert settings.max_backoff_seconds == 5
    assert settings.maintenance_interval_seconds == 120
    assert settings.log_level == "DEBUG"
    board = spec(mode="leaderboard", leaderboard={"dailyKeepDays": 2, "weeklyKeepWeeks": 12})
    settings = _settings_of(deployment(board))
    assert (settings.daily_keep_days, settings.weekly_keep_weeks) == (2, 12)


def test_spec_defaults_are_the_consumer_defaults() -> None:
    """An EventConsumer that sets nothing runs the consumer as its own defaults would."""
    redis = {"urlSecretRef": {"name": "r", "key": "url"}}
    own = ConsumerSettings.model_fields
    for mode in ("logger", "leaderboard"):
        given = EventConsumerSpec.model_validate(
            {
                "mode": mode,
                "kafka": {"bootstrapServers": "k:9092"},
                "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
                **({} if mode == "logger" else {"redis": redis}),
            }
        )
        settings = _settings_of(deployment(given))
        for name in (
            "max_event_bytes",
            "max_future_skew_seconds",
            "max_backoff_seconds",
            "maintenance_interval_seconds",
            "log_level",
            "batch_size",
            "batch_timeout_ms",
            "dlq_retention_days",
            *(("retention_days", "partitions_ahead_days") if mode == "logger" else ()),
            *(("daily_keep_days", "weekly_keep_weeks", "top_n") if mode != "logger" else ()),
        ):
            assert getattr(settings, name) == own[name].default, name


def test_kafka_credentials_are_a_mounted_secret_never_env() -> None:
    built = deployment(
        spec(kafka={"bootstrapServers": "k:9094", "authSecretRef": {"name": "kafka-user"}})
    )
    pod_spec = built["spec"]["template"]["spec"]
    assert pod_spec["volumes"] == [{"name": "kafka-auth", "secret": {"secretName": "kafka-user"}}]
    main = container(built)
    assert main["volumeMounts"] == [
        {"name": "kafka-auth", "mountPath": "/var/run/eventfleet/kafka-auth", "readOnly": True}
    ]
    env = {item["name"]: item for item in main["env"]}
    assert env["EVENTFLEET_KAFKA_AUTH_PATH"]["value"] == "/var/run/eventfleet/kafka-auth"
    # No variable takes anything from the Kafka Secret.
    assert all(
        item.get("valueFrom", {}).get("secretKeyRef", {}).get("name") != "kafka-user"
        for item in main["env"]
    )
    assert _settings_of(built).kafka_auth_path is not None
    assert "volumes" not in deployment()["spec"]["template"]["spec"]
