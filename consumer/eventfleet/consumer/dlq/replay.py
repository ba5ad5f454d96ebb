"""Replaying dead letters: each batch of rows is locked, judged, sent to Kafka and marked
replayed in one PostgreSQL transaction.

A row is marked only after Kafka acknowledged its event, in the transaction that locked it, so a
replay never marks what it did not send, and a second replay of the same selection finds nothing
left to send. What is not atomic: Kafka's acknowledgement and PostgreSQL's commit. A replay that
dies between the two leaves the rows unmarked; running it again sends them again under the same
event_id, and the consumers count them once (the README's guarantees).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import confluent_kafka
from psycopg2.extensions import connection as Connection  # noqa: N812 - the library's name

from eventfleet.consumer.dlq import table
from eventfleet.consumer.dlq.fixup import Fixup, Refused, Send, plan
from eventfleet.consumer.dlq.selection import Selection
from eventfleet.contract.events import DEFAULT_LIMITS, ParseLimits

log = logging.getLogger(__name__)


class Sender(Protocol):
    def send(self, sends: Sequence[Send]) -> list[str | None]:
        """Send all; per send, None once Kafka acknowledged it, else the error's name."""


class KafkaSender:
    """An idempotent producer that waits for every acknowledgement."""

    def __init__(self, config: dict[str, Any], timeout_seconds: float = 30.0) -> None:
        self.timeout = timeout_seconds
        self.producer = confluent_kafka.Producer(
            {
                **config,
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",  # the gateway's: a player's events stay together
                "logger": logging.getLogger("eventfleet.dlq.kafka"),
            }
        )

    def send(self, sends: Sequence[Send]) -> list[str | None]:
        results: list[str | None] = ["not_acknowledged"] * len(sends)

        def acknowledged(position: int) -> Callable[[Any, Any], None]:
            def on_delivery(error: Any, _message: Any) -> None:
                results[position] = None if error is None else str(error.name())

            return on_delivery

        for position, send in enumerate(sends):
            while True:
                try:
                    self.producer.produce(
                        send.topic, send.value, send.key, on_delivery=acknowledged(position)
                    )
                    break
                except BufferError:  # the local queue is full: let it drain, then go on
                    self.producer.poll(0.5)
                except confluent_kafka.KafkaException as error:
                    results[position] = str(error.args[0].name())
                    break
        self.producer.flush(self.timeout)
        return results


@dataclass
class Summary:
    sent: int = 0
    looked_at: int = 0
    would_send: list[tuple[int, Send]] = field(default_factory=list)  # dry run
    refused: list[tuple[int, Refused]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # Kafka did not acknowledge


def replay(
    connection: Connection,
    sender: Sender | None,
    selection: Selection,
    fixup: Fixup,
    *,
    topic: str | None = None,
    batch_size: int = 500,
    limits: ParseLimits = DEFAULT_LIMITS,
    progress: Callable[[Summary], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Summary:
    """Replay the selected rows not replayed yet. Without a sender it is a dry run: nothing is
    sent or marked, and the summary says what would be sent and what would be refused."""
    summary = Summary()
    after_id = 0
    while True:
        with connection:  # one transaction a batch; a dry run's locks end with a rollback
            letters = table.next_to_replay(connection, selection, after_id, batch_size)
            if not letters:
                if sender is None:
                    connection.rollback()
                return summary
            after_id = letters[-1].id
            summary.looked_at += len(letters)
            sends: list[tuple[int, Send]] = []
            for letter in letters:
                verdict = plan(letter, fixup, topic=topic, now=now(), limits=limits)
                if isinstance(verdict, Refused):
                    summary.refused.append((letter.id, verdict))
                else:
                    sends.append((letter.id, verdict))
            if sender is None:
                summary.would_send.extend(sends)
                connection.rollback()
            else:
                results = sender.send([send for _, send in sends])
                delivered = [sent for sent, error in zip(sends, results, strict=True) if not error]
                summary.failed.extend(
                    (row_id, error)
                    for (row_id, _), error in zip(sends, results, strict=True)
                    if error
                )
                table.mark_replayed(connection, delivered)
                summary.sent += len(delivered)
        if progress is not None:
            progress(summary)
