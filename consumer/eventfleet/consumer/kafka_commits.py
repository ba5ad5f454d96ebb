"""Kafka's copy of the offsets (step 4 of the order in runtime.py): which of PostgreSQL's
committed offsets KafkaSource still sends Kafka, how often, and what Kafka's answer settles.

Pure bookkeeping on (topic, partition) keys: KafkaSource.commit and its on_commit callback call
it in the polling thread; the Kafka client itself stays in kafka_source.py.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

TP = tuple[str, int]
# Kafka's copy of the offsets only makes lag visible (PostgreSQL's is the one that counts), so it
# is sent at most this often instead of after every batch: each commit is a write to
# __consumer_offsets in the broker's group coordinator, and at 20 ms batches three consumers sent
# 150 a second (about a sixth of the broker's CPU under load). Lag read from Kafka runs at most
# this much behind; an idle consumer sends what is left within IDLE_POLL_SECONDS (kafka_source).
KAFKA_COMMIT_INTERVAL_SECONDS: Final = 0.25


def offsets_not_sent(
    committed: Mapping[TP, int],
    sent: Mapping[TP, int],
    assigned: Collection[TP],
    in_flight: Mapping[TP, int] | None = None,
) -> dict[TP, int]:
    """The next offsets of assigned partitions that Kafka has not confirmed (`sent`) and is not
    being sent now (`in_flight`); a partition given up meanwhile is its next owner's to
    commit."""
    pending = in_flight or {}
    return {
        tp: n
        for tp, n in committed.items()
        if tp in assigned and sent.get(tp) != n and pending.get(tp) != n
    }


def settle_commit(
    in_flight: dict[TP, int],
    sent: dict[TP, int],
    confirmed: Mapping[TP, int],
    refused: Mapping[TP, int],
) -> None:
    """Kafka's answer to a commit, in place: the offsets it `confirmed` count as sent; a
    `refused` one is no longer in flight, so the next commit() sends it again. (Marking a commit
    sent before its answer left an idle partition's lag showing forever after one failed
    commit, issue 15.)"""
    for tp, offset in confirmed.items():
        sent[tp] = offset
    for tp, offset in (*confirmed.items(), *refused.items()):
        if in_flight.get(tp) == offset:
            del in_flight[tp]
