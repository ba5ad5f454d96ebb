from __future__ import annotations

import uuid

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from eventfleet.gateway.ids import UUID7Generator, uuid7_milliseconds
from eventfleet.gateway.metrics import LocalCounter, LocalHistogram
from eventfleet.gateway.ratelimit import TokenBuckets, worker_share
from tests.unit.gateway.fakes import make_gateway


def test_uuid7_has_version_variant_and_time() -> None:
    generate = UUID7Generator(clock_ms=lambda: 1_795_000_000_123)
    value = generate()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert uuid7_milliseconds(value) == 1_795_000_000_123


def test_uuid7_strictly_increases_within_and_across_milliseconds() -> None:
    ticks = iter([5, 5, 5, 6, 4, 4] + [4] * 5000)  # the clock also steps back once
    generate = UUID7Generator(clock_ms=lambda: next(ticks))
    ids = [generate() for _ in range(5006)]
    assert ids == sorted(ids, key=lambda u: u.int)
    assert len({i.int for i in ids}) == len(ids)


def test_uuid7_from_the_real_clock_sorts_by_creation() -> None:
    generate = UUID7Generator()
    ids = [generate() for _ in range(2000)]
    assert [i.int for i in ids] == sorted(i.int for i in ids)


def test_bucket_allows_the_burst_then_refuses_with_retry_after() -> None:
    buckets = TokenBuckets(rate=2, burst=3)
    assert [buckets.take("a", now=0.0).allowed for _ in range(3)] == [True] * 3
    refused = buckets.take("a", now=0.0)
    assert not refused.allowed
    assert refused.retry_after_seconds == 1
    assert buckets.take("b", now=0.0).allowed  # clients are independent
    assert buckets.take("a", now=0.5).allowed  # refilled one token at 2/s


def test_slow_rate_gives_a_longer_retry_after() -> None:
    buckets = TokenBuckets(rate=0.1, burst=1)
    assert buckets.take("a", now=0.0).allowed
    assert buckets.take("a", now=1.0).retry_after_seconds == 9


def test_bucket_table_is_bounded() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_clients=100)
    for number in range(1000):
        buckets.take(f"spoofed-{number}", now=0.0)
    assert len(buckets) == 100


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0)])
def test_bucket_refuses_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBuckets(rate=rate, burst=burst)


def test_local_histogram_exposes_what_observe_would() -> None:
    buckets = (0.01, 0.1, 1.0)
    direct_registry, local_registry = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("h", "h", ["endpoint"], buckets=buckets, registry=direct_registry)
    local = LocalHistogram(
        Histogram("h", "h", ["endpoint"], buckets=buckets, registry=local_registry), buckets
    )
    direct_counter = Counter("c", "c", ["reason"], registry=direct_registry)
    local_counter = LocalCounter(Counter("c", "c", ["reason"], registry=local_registry))
    for value in (0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 7.0, 0.01):
        direct.labels("a").observe(value)
        local.labels("a").observe(value)
        direct_counter.labels("x").inc()
        local_counter.labels("x").inc()
    local.flush()
    local_counter.flush()

    def samples(registry: CollectorRegistry) -> list[str]:
        lines = generate_latest(registry).decode().splitlines()
        return [line for line in lines if not line.startswith("#") and "_created" not in line]

    assert samples(local_registry) == samples(direct_registry)


def test_uuid7_text_is_the_uuids_text() -> None:
    # text() takes a shortcut to the same id value() builds from the same clock and randomness.
    def seeded() -> UUID7Generator:
        counter = iter(range(10**9))
        return UUID7Generator(
            clock_ms=lambda: 1_795_000_000_000 + next(counter) // 3000,
            random_bytes=lambda n: bytes((i * 7 + 3) % 256 for i in range(n)),
        )

    as_text, as_uuid = seeded(), seeded()
    for _ in range(5000):
        text = as_text.text()
        assert text == str(as_uuid())
        assert uuid.UUID(text).version == 7


def test_each_worker_gets_its_share_of_the_rate_and_burst() -> None:
    assert worker_share(100, 10, 1) == (100, 10)
    assert worker_share(100, 10, 4) == (25, 3)  # the burst rounds up: never below one request
    assert worker_share(1, 1, 8) == (0.125, 1)


def test_the_gateway_limits_each_worker_to_its_share() -> None:
    gateway, _ = make_gateway(workers=2, rate_limit_per_second=10, rate_limit_burst=4)
    assert gateway.buckets is not None
    assert (gateway.buckets.rate, gateway.buckets.burst) == (5, 2)
