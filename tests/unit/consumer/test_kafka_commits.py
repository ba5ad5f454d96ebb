"""Which offsets the consumer sends Kafka (its copy only makes lag visible)."""

from __future__ import annotations

from eventfleet.consumer.kafka_source import offsets_not_sent


def test_only_offsets_kafka_has_not_seen_are_sent() -> None:
    committed = {("t", 0): 10, ("t", 1): 7, ("t", 2): 3}
    sent = {("t", 0): 10, ("t", 1): 5}
    assigned = {("t", 0), ("t", 1), ("t", 2)}
    assert offsets_not_sent(committed, sent, assigned) == {("t", 1): 7, ("t", 2): 3}


def test_nothing_is_sent_twice_and_nothing_for_a_partition_given_up() -> None:
    committed = {("t", 0): 10, ("t", 1): 7}
    assert offsets_not_sent(committed, dict(committed), {("t", 0), ("t", 1)}) == {}
    assert offsets_not_sent(committed, {}, {("t", 0)}) == {("t", 0): 10}
