"""Refused credentials make the consumer not ready, saying why, until Kafka accepts it."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from eventfleet.consumer.kafka_refusal import KafkaRefusal
from eventfleet.consumer.observability import Health, Metrics

AUTH = "SASL authentication error: Authentication failed due to invalid credentials"


def test_a_refusal_keeps_the_consumer_not_ready_whatever_the_loop_sets_until_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    health = Health(metrics.ready)
    health.ready = True
    refusal = KafkaRefusal(health)
    with caplog.at_level(logging.INFO):
        refusal(KafkaError(KafkaError._AUTHENTICATION, AUTH))
        refusal(KafkaError(KafkaError._AUTHENTICATION, AUTH))  # librdkafka's next retry
        health.ready = True  # a batch committed: still not ready
        assert [health.ready] == [False]
        assert metrics.ready._value.get() == 0
        assert (
            health.saying("not ready")
            == f"not ready: Kafka refused the credentials: {AUTH}\n".encode()
        )
        refusals = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(refusals) == 1  # said once, not at every retry
        refusal.accepted()
    assert health.ready
    assert metrics.ready._value.get() == 1
    assert health.saying("ready") == b"ready\n"


def test_other_errors_are_logged_and_change_nothing(caplog: pytest.LogCaptureFixture) -> None:
    health = Health()
    health.ready = True
    with caplog.at_level(logging.WARNING):
        KafkaRefusal(health)(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert health.ready
    assert "Kafka reported an error" in caplog.text
