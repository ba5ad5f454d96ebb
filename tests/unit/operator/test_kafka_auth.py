"""The operator's Kafka connection from an EventConsumer and its binding Secret: pure."""

from __future__ import annotations

from typing import Any

from eventfleet.contract.kafka_binding import BindingError
from eventfleet.operator.kafka_auth import KafkaConnection, connection_from
from eventfleet.operator.spec import EventConsumerSpec

PASSWORD = "rotate-me-0815"
BINDING = {
    "security.protocol": b"SASL_SSL",
    "sasl.mechanism": b"SCRAM-SHA-512",
    "username": b"alice",
    "password": PASSWORD.encode(),
}


def spec(**kafka: Any) -> EventConsumerSpec:
    return EventConsumerSpec.model_validate(
        {
            "mode": "logger",
            "kafka": {"bootstrapServers": "kafka:9094", "authSecretRef": {"name": "k"}, **kafka},
            "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
        }
    )


def test_without_a_secret_the_connection_is_plaintext() -> None:
    assert connection_from(spec(), None) == KafkaConnection("kafka:9094")
    assert KafkaConnection("kafka:9094").config() == {"bootstrap.servers": "kafka:9094"}


def test_a_binding_becomes_the_clients_settings_and_stays_out_of_repr() -> None:
    found = connection_from(spec(), BINDING)
    assert isinstance(found, KafkaConnection)
    assert found.config()["sasl.password"] == PASSWORD
    assert found.config()["bootstrap.servers"] == "kafka:9094"
    assert PASSWORD not in repr(found)
    # Equal credentials give equal (shared) connections; rotated ones a new one.
    assert found == connection_from(spec(), dict(BINDING))
    assert found != connection_from(spec(), {**BINDING, "password": b"other"})


def test_a_binding_naming_other_brokers_is_refused() -> None:
    same = connection_from(spec(), {**BINDING, "bootstrap.servers": b"kafka:9094"})
    assert isinstance(same, KafkaConnection)
    other = connection_from(spec(), {**BINDING, "bootstrap.servers": b"elsewhere:9094"})
    assert isinstance(other, BindingError)
    assert other.key == "bootstrap.servers"


def test_a_malformed_binding_names_the_key() -> None:
    found = connection_from(spec(), {k: v for k, v in BINDING.items() if k != "password"})
    assert isinstance(found, BindingError)
    assert found.key == "password"
