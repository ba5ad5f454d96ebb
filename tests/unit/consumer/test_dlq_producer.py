"""A dead letter the DLQ topic does not take is counted from librdkafka's delivery report."""

from __future__ import annotations

import logging
import socket

import pytest
from prometheus_client import generate_latest

from eventfleet.consumer.batch import Bad, Record
from eventfleet.consumer.dlq_producer import DlqProducer
from eventfleet.consumer.observability import Metrics


def _closed_port() -> int:
    """A loopback port nothing listens on: every produce there times out."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_undelivered_dead_letter_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    producer = DlqProducer(
        f"127.0.0.1:{_closed_port()}",
        "player.events.dlq",
        "group-a",
        {"message.timeout.ms": "300"},
        failures=metrics.dlq_produce_failures,
    )
    bad = [Bad(Record("player.events", 0, offset, b"{"), "invalid_json", "") for offset in (1, 2)]
    counted = "eventfleet_consumer_dlq_produce_failures_total"
    with caplog.at_level(logging.WARNING, logger="eventfleet.consumer.dlq_producer"):
        producer.produce(bad)
        assert metrics.registry.get_sample_value(counted) == 0  # accepted, not yet reported
        producer.flush()  # serves the delivery reports
    assert metrics.registry.get_sample_value(counted) == 2
    assert f"{counted} 2.0".encode() in generate_latest(metrics.registry)
    failed = [r for r in caplog.records if r.getMessage() == "DLQ topic produce failed"]
    assert len(failed) == 2
    assert all(getattr(r, "topic", None) == "player.events.dlq" for r in failed)
