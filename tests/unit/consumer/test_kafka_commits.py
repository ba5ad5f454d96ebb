"""Which offsets the consumer sends Kafka (its copy only makes lag visible)."""

from __future__ import annotations

from eventfleet.consumer.kafka_commits import offsets_not_sent, settle_commit


def test_only_offsets_kafka_has_not_seen_are_sent() -> None:
    committed = {("t", 0): 10, ("t", 1): 7, ("t", 2): 3}
    sent = {("t", 0): 10, ("t", 1): 5}
    assigned = {("t", 0), ("t", 1), ("t", 2)}
    assert offsets_not_sent(committed, sent, assigned) == {("t", 1): 7, ("t", 2): 3}


def test_nothing_is_sent_twice_and_nothing_for_a_partition_given_up() -> None:
    committed = {("t", 0): 10, ("t", 1): 7}
    assert offsets_not_sent(committed, dict(committed), {("t", 0), ("t", 1)}) == {}
    assert offsets_not_sent(committed, {}, {("t", 0)}) == {("t", 0): 10}


def test_an_offset_in_flight_is_not_sent_again_until_kafka_answers() -> None:
    committed = {("t", 0): 10, ("t", 1): 7}
    assigned = {("t", 0), ("t", 1)}
    in_flight = {("t", 0): 10}
    assert offsets_not_sent(committed, {}, assigned, in_flight) == {("t", 1): 7}
    # A newer offset committed meanwhile goes out beside the one in flight.
    committed[("t", 0)] = 12
    assert offsets_not_sent(committed, {}, assigned, in_flight) == {("t", 0): 12, ("t", 1): 7}


def test_a_confirmed_commit_counts_as_sent_and_a_refused_one_is_sent_again() -> None:
    committed = {("t", 0): 10, ("t", 1): 7}
    assigned = {("t", 0), ("t", 1)}
    in_flight = dict(committed)
    sent: dict[tuple[str, int], int] = {}
    settle_commit(in_flight, sent, confirmed={("t", 0): 10}, refused={("t", 1): 7})
    assert sent == {("t", 0): 10}
    assert in_flight == {}
    assert offsets_not_sent(committed, sent, assigned, in_flight) == {("t", 1): 7}


def test_a_late_answer_for_an_older_offset_leaves_the_newer_one_in_flight() -> None:
    in_flight = {("t", 0): 12}
    sent: dict[tuple[str, int], int] = {}
    settle_commit(in_flight, sent, confirmed={}, refused={("t", 0): 10})
    assert in_flight == {("t", 0): 12}
    settle_commit(in_flight, sent, confirmed={("t", 0): 12}, refused={})
    assert (in_flight, sent) == ({}, {("t", 0): 12})
