"""JSON log lines and the metrics registry."""

from __future__ import annotations

import json
import logging

from prometheus_client import generate_latest

from eventfleet.consumer.observability import JsonFormatter, Metrics


def test_log_lines_are_json_with_extra_fields() -> None:
    record = logging.LogRecord(
        "eventfleet", logging.WARNING, __file__, 1, "hello %s", ("you",), None
    )
    record.partition = "t/1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello you"
    assert line["level"] == "WARNING"
    assert line["partition"] == "t/1"
    assert line["time"].endswith("+00:00")


def test_each_metrics_object_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.dlq.labels("invalid_json").inc()
    assert b'eventfleet_consumer_dlq_total{reason="invalid_json"} 1.0' in generate_latest(
        one.registry
    )
    assert b"invalid_json" not in generate_latest(two.registry)
