"""Desired Kubernetes objects, built by pure functions from a validated spec.

The handlers apply what these return (server-side apply, so a hand edit of a field the operator
owns is set back on the next reconcile) and never assemble objects themselves. Secrets are passed
by reference only: no function here ever sees a secret's value. `owning_consumer_name` reads
back the owner reference `Owner.reference` writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eventfleet.contract.names import Mode
from eventfleet.operator.placement import apply_pod_template
from eventfleet.operator.spec import GROUP, KIND, VERSION, EventConsumerSpec

HTTP_PORT: Final = 8080  # the consumer's /healthz, /readyz and /metrics
FIELD_MANAGER: Final = "eventfleet-operator"
MANAGED_BY: Final = "eventfleet-operator"
CONSUMER_LABEL: Final = f"{GROUP}/consumer"
# The pod template's digest of the Secrets the consumers read (secret_checksum.py).
SECRETS_CHECKSUM_ANNOTATION: Final = f"{GROUP}/secrets-checksum"
DEFAULT_RESOURCES: Final = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}
# The Kafka binding Secret (kafka.authSecretRef) as files: credentials never sit in the env.
KAFKA_AUTH_VOLUME: Final = "kafka-auth"
KAFKA_AUTH_MOUNT: Final = "/var/run/eventfleet/kafka-auth"
# Enough for the consumer to finish its batch, commit and close after SIGTERM.
TERMINATION_GRACE_SECONDS: Final = 30


@dataclass(frozen=True, slots=True)
class Owner:
    """The EventConsumer an object belongs to."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def owning_consumer_name(metadata: Mapping[str, Any]) -> str | None:
    """The EventConsumer named in an object's ownerReferences (what Owner.reference wrote)."""
    owners = [
        ref
        for ref in metadata.get("ownerReferences", [])
        if ref.get("kind") == KIND and ref.get("apiVersion") == f"{GROUP}/{VERSION}"
    ]
    return str(owners[0]["name"]) if owners else None


def label_value(text: str) -> str:
    """A label value (at most 63 characters) that stays unique for long names."""
    if len(text) <= 63:
        return text
    return f"{text[:52]}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def deployment_name(owner_name: str) -> str:
    return f"{owner_name}-consumer"


def selector_labels(owner: Owner) -> dict[str, str]:
    return {CONSUMER_LABEL: label_value(owner.name)}


def selector_string(owner: Owner) -> str:
    """status.selector, for the scale subresource (and `kubectl get pods -l ...`)."""
    return ",".join(f"{key}={value}" for key, value in selector_labels(owner).items())


def consumer_labels(owner: Owner, mode: Mode) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "eventfleet-consumer",
        "app.kubernetes.io/instance": label_value(owner.name),
        "app.kubernetes.io/component": mode,
        "app.kubernetes.io/part-of": "eventfleet",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **selector_labels(owner),
    }


def sink_owner(owner: Owner) -> str:
    """How the sink (a mode's tables in a database) records the EventConsumer writing it."""
    return f"{owner.namespace}/{owner.name}"


def consumer_env(spec: EventConsumerSpec, group: str, owner: Owner) -> list[dict[str, Any]]:
    """The consumer's settings as EVENTFLEET_* variables (see eventfleet.consumer.settings)."""
    plain: dict[str, str] = {
        "EVENTFLEET_MODE": spec.mode,
        "EVENTFLEET_SINK_OWNER": sink_owner(owner),
        "EVENTFLEET_KAFKA_BOOTSTRAP": spec.kafka.bootstrap_servers,
        "EVENTFLEET_TOPIC": spec.kafka.topic,
        "EVENTFLEET_CONSUMER_GROUP": group,
        "EVENTFLEET_BATCH_SIZE": str(spec.processing.batch_size),
        "EVENTFLEET_BATCH_TIMEOUT_MS": str(spec.processing.batch_timeout_ms),
        "EVENTFLEET_DLQ_RETENTION_DAYS": str(spec.processing.dlq_retention_days),
        "EVENTFLEET_MAX_EVENT_BYTES": str(spec.processing.max_event_bytes),
        "EVENTFLEET_MAX_FUTURE_SKEW_SECONDS": str(spec.processing.max_future_skew_seconds),
        "EVENTFLEET_MAX_BACKOFF_SECONDS": str(spec.processing.max_backoff_seconds),
        "EVENTFLEET_MAINTENANCE_INTERVAL_SECONDS": str(
            spec.processing.maintenance_interval_seconds
        ),
        "EVENTFLEET_POSTGRES_LOCK_TIMEOUT_SECONDS": str(spec.postgres.lock_timeout_seconds),
        "EVENTFLEET_POSTGRES_STATEMENT_TIMEOUT_SECONDS": str(
            spec.postgres.statement_timeout_seconds
        ),
        "EVENTFLEET_POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": str(
            spec.postgres.idle_in_transaction_timeout_seconds
        ),
        "EVENTFLEET_LOG_LEVEL": spec.log_level,
        "EVENTFLEET_HTTP_PORT": str(HTTP_PORT),
    }
    if spec.processing.dlq_topic:
        plain["EVENTFLEET_DLQ_TOPIC"] = spec.processing.dlq_topic
    if spec.kafka.auth_secret_ref is not None:
        plain["EVENTFLEET_KAFKA_AUTH_PATH"] = KAFKA_AUTH_MOUNT  # a path, not a secret
    if spec.mode != "logger":
        plain["EVENTFLEET_DEDUP_WINDOW_HOURS"] = str(spec.processing.dedup_window_hours)
    if spec.mode == "logger":
        plain["EVENTFLEET_RETENTION_DAYS"] = str(spec.logger.retention_days)
        plain["EVENTFLEET_PARTITIONS_AHEAD_DAYS"] = str(spec.logger.partitions_ahead_days)
    if spec.mode == "leaderboard":
        plain["EVENTFLEET_BOARDS"] = ",".join(spec.leaderboard.boards)
        plain["EVENTFLEET_PERIODS"] = ",".join(spec.leaderboard.periods)
        plain["EVENTFLEET_TOP_N"] = str(spec.leaderboard.top_n)
        plain["EVENTFLEET_DAILY_KEEP_DAYS"] = str(spec.leaderboard.daily_keep_days)
        plain["EVENTFLEET_WEEKLY_KEEP_WEEKS"] = str(spec.leaderboard.weekly_keep_weeks)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items()]
    env.append(
        _from_secret(
            "EVENTFLEET_POSTGRES_DSN",
            spec.postgres.dsn_secret_ref.name,
            spec.postgres.dsn_secret_ref.key,
        )
    )
    if spec.redis is not None:
        env.append(
            _from_secret(
                "EVENTFLEET_REDIS_URL",
                spec.redis.url_secret_ref.name,
                spec.redis.url_secret_ref.key,
            )
        )
        env.append({"name": "EVENTFLEET_REDIS_STATS_DB", "value": str(spec.redis.stats_db)})
        env.append(
            {"name": "EVENTFLEET_REDIS_LEADERBOARD_DB", "value": str(spec.redis.leaderboard_db)}
        )
    return env


def _from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def build_deployment(
    owner: Owner,
    spec: EventConsumerSpec,
    *,
    replicas: int,
    image: str,
    group: str,
    secrets_checksum: str | None = None,
) -> dict[str, Any]:
    """The consumer Deployment of one EventConsumer; `secrets_checksum` (of the Secrets the
    consumers read) goes into the pod template, so that a changed Secret rolls the pods."""
    labels = consumer_labels(owner, spec.mode)
    probe = {"periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
    container = {
        "name": "consumer",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["eventfleet", "consumer"],
        "env": consumer_env(spec, group, owner),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, **probe},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, **probe},
        "resources": spec.resources or DEFAULT_RESOURCES,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "enableServiceLinks": False,
    }
    if spec.kafka.auth_secret_ref is not None:
        container["volumeMounts"] = [
            {"name": KAFKA_AUTH_VOLUME, "mountPath": KAFKA_AUTH_MOUNT, "readOnly": True}
        ]
        pod_spec["volumes"] = [
            {
                "name": KAFKA_AUTH_VOLUME,
                "secret": {"secretName": spec.kafka.auth_secret_ref.name},
            }
        ]
    template = {
        "metadata": {
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(HTTP_PORT),
                "prometheus.io/path": "/metrics",
                **({SECRETS_CHECKSUM_ANNOTATION: secrets_checksum} if secrets_checksum else {}),
            },
        },
        "spec": pod_spec,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(owner.name),
            "namespace": owner.namespace,
            "labels": labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(owner)},
            "template": apply_pod_template(template, spec.pod_template, selector_labels(owner)),
        },
    }
