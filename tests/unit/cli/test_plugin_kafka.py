"""`kubectl eventfleet status` reads lag with the EventConsumer's Kafka credentials: which ones,
and what it says when it has none it can use (no API server: the Secret-less branches)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes import client

from eventfleet.cli.plugin.cluster import Cluster, partitions
from eventfleet.cli.plugin.main import build_parser
from eventfleet.cli.plugin.view import Unreadable
from eventfleet.operator.kafka_auth import KafkaConnection

PASSWORD = "plugin-password-0815"


def resource(**kafka: Any) -> dict[str, Any]:
    return {
        "spec": {"kafka": {"bootstrapServers": "kafka:9094", "topic": "t", **kafka}},
        "status": {"consumerGroup": "g"},
    }


def cluster() -> Cluster:
    return Cluster(client.ApiClient(), "gamemetrics")  # no request is made here


def binding(tmp_path: Path, **entries: str) -> Path:
    path = tmp_path / "kafka.json"
    values = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
              "username": "u", "password": PASSWORD, **entries}  # fmt: skip
    path.write_text(json.dumps({k: v for k, v in values.items() if v}))
    return path


def test_without_a_secret_ref_the_lag_read_is_plaintext() -> None:
    assert cluster().kafka_connection(resource()) == KafkaConnection("kafka:9094")


def test_a_binding_file_gives_the_lag_read_its_credentials(tmp_path: Path) -> None:
    found = cluster().kafka_connection(resource(authSecretRef={"name": "k"}), binding(tmp_path))
    assert isinstance(found, KafkaConnection)
    assert found.config()["sasl.password"] == PASSWORD
    assert found.config()["bootstrap.servers"] == "kafka:9094"


def test_an_unusable_binding_file_is_said_naming_the_key_never_the_password(
    tmp_path: Path,
) -> None:
    missing = cluster().kafka_connection(resource(), binding(tmp_path, username=""))
    assert missing == Unreadable(f"Kafka: {tmp_path / 'kafka.json'}: missing key username "
                                 "(needed by SCRAM-SHA-512)")  # fmt: skip
    other = cluster().kafka_connection(
        resource(), binding(tmp_path, **{"bootstrap.servers": "x:1"})
    )
    assert isinstance(other, Unreadable)
    assert "differs from spec.kafka.bootstrapServers" in other.why
    assert PASSWORD not in other.why
    # The lag table shows the reason instead of reading Kafka without credentials.
    assert partitions(resource(), other) == other


def test_status_takes_kafka_auth() -> None:
    args = build_parser().parse_args(["status", "x", "--kafka-auth", "/b", "-n", "ns"])
    assert (args.kafka_auth, args.namespace) == (Path("/b"), "ns")
