"""Kafka refusing the consumer's credentials or its TLS handshake: not ready, and saying why.

librdkafka reports these through the error callback only (a poll just returns nothing) and
retries by itself, so the process must neither exit (a crash loop fixes nothing, docs/
security.md) nor look ready (a rollout onto credentials Kafka refuses would pass for a success).
The refusal lasts until Kafka is seen to accept the consumer: an assignment, a record or a
confirmed commit. Other errors of the callback are logged, as librdkafka logs them without one.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from confluent_kafka import KafkaError

from eventfleet.consumer.observability import Health
from eventfleet.contract.kafka_errors import refusal_reason

log = logging.getLogger(__name__)
# While the refusal lasts, the log says it again this often (once per librdkafka retry, up to
# every second, would drown everything else).
REMIND_SECONDS: Final = 60.0


class KafkaRefusal:
    """The error callback of the consumer's Kafka clients (served inside poll)."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self.reason: str | None = None
        self._said_at = 0.0

    def __call__(self, error: KafkaError) -> None:
        reason = refusal_reason(error.name(), error.str())
        if reason is None:
            log.warning("Kafka reported an error", extra={"error": error.str()})
            return
        now = time.monotonic()
        if reason != self.reason or now - self._said_at >= REMIND_SECONDS:
            log.error("not ready; retrying with the same credentials", extra={"reason": reason})
            self._said_at = now
        self.reason = reason
        self.health.block(reason)

    def accepted(self) -> None:
        """Kafka answered as it only does an accepted client."""
        if self.reason is None:
            return
        log.info("Kafka accepts the consumer again", extra={"was": self.reason})
        self.reason = None
        self.health.block(None)
