"""Every way in the binding format reaches a secured listener of the local stack, through the
config path each component takes from it: SASL_SSL with SCRAM-SHA-256 and with PLAIN, and SSL
with a client certificate (mutual TLS). SCRAM-SHA-512 has its own tests per component
(test_secured_kafka.py of the consumer and the gateway, test_kafka_auth.py of the operator).

One round trip per way in: the gateway's producer config (from its --kafka-auth directory)
produces the events, a consumer (its binding read as `eventfleet consumer` reads it) stores them,
and the operator's admin client (a KafkaConnection from the same entries) reads the topic and the
group's committed offsets. Credentials the listener must refuse are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from eventfleet.consumer.cli import kafka_binding
from eventfleet.consumer.runtime import Consumer
from eventfleet.contract.kafka_binding import KafkaBinding
from eventfleet.gateway.producer import producer_config
from eventfleet.gateway.settings import load_settings
from eventfleet.operator import kafka_admin
from eventfleet.operator.kafka_auth import KafkaConnection, connection_from
from eventfleet.operator.spec import EventConsumerSpec
from tests.fixtures.secured_kafka import ScramUser
from tests.fixtures.stack import Stack
from tests.integration.consumer.helpers import generate_events, rows, run_until_done, settings_for

pytestmark = pytest.mark.integration
EVENTS = 60


def _entries(request: pytest.FixtureRequest, stack: Stack, way: str) -> dict[str, str]:
    if way == "mtls":
        return {p.name: p.read_text() for p in sorted(stack.kafka_ssl_binding.iterdir())}
    user: ScramUser = request.getfixturevalue(
        "scram_256_user" if way == "scram-sha-256" else "plain_user"
    )
    return user.binding()


def _write(folder: Path, entries: dict[str, str]) -> Path:
    folder.mkdir()
    for key, value in entries.items():
        (folder / key).write_text(value)
    return folder


def _connection(bootstrap: str, entries: dict[str, str]) -> KafkaConnection:
    spec = EventConsumerSpec.model_validate(
        {
            "mode": "logger",
            "kafka": {"bootstrapServers": bootstrap, "authSecretRef": {"name": "kafka-user"}},
            "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
        }
    )
    found = connection_from(spec, dict(entries))
    assert isinstance(found, KafkaConnection), found
    return found


@pytest.mark.parametrize("way", ["scram-sha-256", "plain", "mtls"])
def test_each_way_in_round_trips_through_gateway_consumer_and_operator(  # noqa: PLR0917 - fixtures
    request: pytest.FixtureRequest,
    stack: Stack,
    create_topic: Callable[..., str],
    consumer_group: str,
    postgres_dsn: str,
    redis_url: str,
    tmp_path: Path,
    way: str,
) -> None:
    entries = _entries(request, stack, way)
    bootstrap = entries["bootstrap.servers"]
    assert bootstrap in (stack.kafka_sasl_bootstrap, stack.kafka_ssl_bootstrap)
    folder = _write(tmp_path / "binding", entries)
    topic = create_topic(partitions=2)

    # The gateway: its bootstrap servers and credentials both from the binding directory.
    gateway = load_settings(["--kafka-auth", str(folder), "--topic", topic], {})
    assert gateway.kafka_bootstrap == bootstrap
    producer = Producer(producer_config(gateway))
    events = generate_events(EVENTS, seed=11)
    for event in events:
        producer.produce(topic, key=event["player_id"], value=json.dumps(event))
    assert producer.flush(30) == 0

    # The consumer, its binding read as `eventfleet consumer --kafka-auth-path` reads it.
    binding = kafka_binding(folder, bootstrap)
    assert isinstance(binding, KafkaBinding), binding
    settings = settings_for(
        "logger",
        bootstrap=bootstrap,
        topic=topic,
        group=consumer_group,
        dsn=postgres_dsn,
        redis_url=redis_url,
        kafka_auth_path=folder,
    )
    run_until_done(Consumer(settings, kafka_auth=binding.client_config()), EVENTS)
    assert rows(postgres_dsn, "SELECT count(*) FROM events")[0][0] == EVENTS

    # The operator: topic management and lag reads over the same entries.
    connection = _connection(bootstrap, entries)
    observed = kafka_admin.describe_topic(connection, topic)
    assert observed is not None
    assert observed.partitions == 2
    offsets = kafka_admin.group_offsets(connection, topic, consumer_group)
    assert sum(o.high for o in offsets) == EVENTS
    assert [o.committed for o in offsets] == [o.high for o in offsets]


@pytest.mark.parametrize("way", ["scram-sha-256", "plain", "mtls"])
def test_each_listener_refuses_what_it_must(
    request: pytest.FixtureRequest, stack: Stack, create_topic: Callable[..., str], way: str
) -> None:
    entries = _entries(request, stack, way)
    if way == "mtls":
        # No client certificate: the TLS handshake fails (ssl.client.auth=required).
        refused = {k: v for k, v in entries.items() if k not in ("user.crt", "user.key")}
    else:
        refused = {**entries, "password": "not-the-password-4711"}
    connection = _connection(entries["bootstrap.servers"], refused)
    with pytest.raises(kafka_admin.KafkaAuthFailedError) as failed:
        kafka_admin.describe_topic(connection, create_topic(partitions=1))
    assert "not-the-password-4711" not in str(failed.value)
