"""The DLQ topic (step 4 of the order in runtime.py): a copy of each dead letter for whoever
reads Kafka. dlq_events in PostgreSQL is the record of truth; a failed produce is counted
(`failures`, from the delivery report or a refused produce) and logged, never retried."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import Counter

from eventfleet.consumer.batch import Bad

log = logging.getLogger(__name__)


class DlqProducer:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        kafka_auth: Mapping[str, str] | None = None,
        *,
        failures: Counter | None = None,
    ) -> None:
        self.topic = topic
        self.group = group
        self.failures = failures
        self.producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 20,
                "logger": logging.getLogger("eventfleet.consumer.kafka"),
                **(kafka_auth or {}),
            }
        )

    def produce(self, dlq: list[Bad]) -> None:
        for bad in dlq:
            record = bad.record
            try:
                self.producer.produce(
                    self.topic,
                    value=record.value,
                    headers=[
                        ("reason", bad.reason.encode()),
                        ("message", bad.message[:1000].encode()),
                        ("source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
                        ("consumer_group", self.group.encode()),
                    ],
                    on_delivery=self._delivered,
                )
            except (KafkaException, BufferError) as error:
                # dlq_events in PostgreSQL is the record of truth; the topic is a convenience.
                self._failed(str(error))
        self.producer.poll(0)

    def _delivered(self, error: KafkaError | None, _message: Any) -> None:
        """librdkafka's delivery report (served by poll and flush): a produce that was accepted
        and then not written (the topic missing, Kafka down past message.timeout.ms) ends here."""
        if error is not None:
            self._failed(error.str())

    def _failed(self, why: str) -> None:
        if self.failures is not None:
            self.failures.inc()
        log.warning("DLQ topic produce failed", extra={"topic": self.topic, "error": why})

    def flush(self) -> None:
        self.producer.flush(10)
