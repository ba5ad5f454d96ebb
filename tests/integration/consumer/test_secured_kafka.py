"""The consumer against Kafka's SASL_SSL listener (SCRAM-SHA-512, the stack's own CA), its
credentials read from a directory in the binding format, as the mounted Secret gives them."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka.admin import AdminClient

from eventfleet.consumer.settings import ConsumerSettings
from tests.fixtures.consumer_bench import ConsumerBench
from tests.fixtures.net import free_port
from tests.fixtures.secured_kafka import ScramUser, set_password
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.helpers import generate_events, http_answer, http_status, spawn


def _dlq_records(stack: Stack, topic: str, expected: int) -> list[bytes]:
    reader = KafkaConsumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": f"read-{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    reader.subscribe([topic])
    found: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(found) < expected and time.monotonic() < deadline:
        message = reader.poll(0.5)
        if message is not None and message.error() is None:
            found.append(message.value() or b"")
    reader.close()
    return found


def over_sasl_ssl(
    bench: ConsumerBench, topic: str, binding: Path, **extra: object
) -> ConsumerSettings:
    """A logger consumer's settings for the SASL_SSL listener, its credentials the `binding`
    directory (as the mounted Secret gives them); `extra` as for `bench.settings`."""
    return bench.settings(
        "logger",
        topic,
        bootstrap=bench.stack.kafka_sasl_bootstrap,
        kafka_auth_path=binding,
        **extra,
    )


def test_the_consumer_and_its_dlq_producer_run_over_sasl_ssl(
    bench: ConsumerBench, scram_user: ScramUser, tmp_path: Path
) -> None:
    topic, dlq = bench.topic(partitions=3), bench.topic(partitions=1, prefix="dlq")
    events = generate_events(300)
    producer = scram_user.producer()
    for event in events:
        producer.produce(topic, key=event["player_id"], value=json.dumps(event))
    for bad in (b"not json", b"{}", b"[1,2]"):
        producer.produce(topic, value=bad)
    assert producer.flush(30) == 0

    settings = over_sasl_ssl(bench, topic, scram_user.write(tmp_path / "binding"), dlq_topic=dlq)
    log = tmp_path / "consumer.log"
    process = spawn(settings, log=log)
    try:
        bench.wait_processed(303, timeout=90, what="303 records")
        assert sorted(_dlq_records(bench.stack, dlq, 3)) == [b"[1,2]", b"not json", b"{}"]
    finally:
        process.terminate()
        assert process.wait(30) == 0, log.read_text()
    assert bench.rows("SELECT count(*) FROM events")[0][0] == len(events)
    assert bench.rows("SELECT count(*) FROM dlq_events")[0][0] == 3
    assert scram_user.password not in log.read_text()


def test_a_wrong_password_is_not_ready_logged_not_a_crash_and_never_shown(
    bench: ConsumerBench, scram_user: ScramUser, kafka_admin: AdminClient, tmp_path: Path
) -> None:
    wrong = "not-the-password-4711"
    topic = bench.topic(partitions=1)
    port = free_port()
    binding = scram_user.write(tmp_path / "binding", password=wrong)
    settings = over_sasl_ssl(bench, topic, binding, http_port=port, http_host="127.0.0.1")
    log = tmp_path / "consumer.log"
    process = spawn(settings, log=log)
    try:
        wait_for(
            lambda: "Kafka refused the credentials" in log.read_text(errors="replace"),
            timeout=60,
            what="the authentication failure in the log",
        )
        status, body = http_answer(port, "/readyz")
        assert status == 503
        assert "Kafka refused the credentials" in body
        assert "Authentication failed" in body
        assert http_status(port, "/healthz") == 200  # alive: retrying, not stalled
        time.sleep(3)
        assert process.poll() is None, "the consumer exited instead of waiting for Kafka"
        # Kafka comes to accept that password: the same process joins, reads and is ready.
        set_password(kafka_admin, scram_user.username, wrong)
        producer = replace(scram_user, password=wrong).producer()
        producer.produce(topic, value=json.dumps(generate_events(1)[0]))
        assert producer.flush(30) == 0
        bench.wait_processed(1, timeout=90, what="the record")
        wait_for(lambda: http_status(port, "/readyz") == 200, timeout=30, what="ready")
    finally:
        process.terminate()
        code = process.wait(60)
    assert code == 0, log.read_text()
    assert wrong not in log.read_text()


def test_a_malformed_binding_is_refused_at_start_naming_the_key(
    bench: ConsumerBench, scram_user: ScramUser, tmp_path: Path
) -> None:
    settings = over_sasl_ssl(bench, "t", scram_user.write(tmp_path / "binding", username=""))
    log = tmp_path / "consumer.log"
    assert spawn(settings, log=log).wait(60) == 2
    assert "missing key username" in log.read_text()
    assert scram_user.password not in log.read_text()
