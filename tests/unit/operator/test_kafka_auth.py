"""The operator's Kafka connection from an EventConsumer and its binding Secret: pure."""

from __future__ import annotations

from typing import Any

from eventfleet.contract.kafka_binding import BindingError
from eventfleet.operator.builders import SECRETS_CHECKSUM_ANNOTATION, Owner, build_deployment
from eventfleet.operator.kafka_auth import KafkaConnection, connection_from
from eventfleet.operator.secret_checksum import checksum, referenced
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


def test_the_secrets_checksum_follows_exactly_what_the_consumers_read() -> None:
    consumer = spec()
    refs = referenced(consumer)
    assert refs == [("db", "dsn"), ("k", None)]
    base = {("db", "dsn"): {"dsn": b"postgresql://a", "other": b"1"}, ("k", None): BINDING}
    first = checksum(base)
    assert checksum(dict(base)) == first  # deterministic
    unrelated = {**base, ("db", "dsn"): {"dsn": b"postgresql://a", "other": b"2"}}
    assert checksum(unrelated) == first  # a key the consumers do not read
    rotated_dsn = {**base, ("db", "dsn"): {"dsn": b"postgresql://b", "other": b"1"}}
    rotated_kafka = {**base, ("k", None): {**BINDING, "password": b"new"}}
    missing = {**base, ("k", None): None}
    found = {checksum(rotated_dsn), checksum(rotated_kafka), checksum(missing), first}
    assert len(found) == 4
    assert PASSWORD not in first


def test_the_checksum_is_an_annotation_of_the_pod_template() -> None:
    built = build_deployment(
        Owner("l", "ns", "u"), spec(), replicas=1, image="i", group="g", secrets_checksum="abc"
    )
    annotations = built["spec"]["template"]["metadata"]["annotations"]
    assert annotations[SECRETS_CHECKSUM_ANNOTATION] == "abc"
