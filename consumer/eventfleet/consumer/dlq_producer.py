"""The DLQ topic (step 4 of the order in runtime.py): a copy of each dead letter for whoever
reads Kafka. dlq_events in PostgreSQL is the record of truth; a failed produce is logged, never
retried."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import confluent_kafka
from confluent_kafka import KafkaException

from eventfleet.consumer.batch import Bad

log = logging.getLogger(__name__)


class DlqProducer:
    def __init__(
        self, bootstrap: str, topic: str, group: str, kafka_auth: Mapping[str, str] | None = None
    ) -> None:
        self.topic = topic
        self.group = group
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
                )
            except (KafkaException, BufferError) as error:
                # dlq_events in PostgreSQL is the record of truth; the topic is a convenience.
                log.warning("DLQ topic produce failed", extra={"error": str(error)})
        self.producer.poll(0)

    def flush(self) -> None:
        self.producer.flush(10)
