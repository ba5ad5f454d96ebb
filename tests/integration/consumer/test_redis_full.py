"""A full Redis (maxmemory reached, noeviction: every write refused with OOM) stalls nothing: the
consumer goes on storing in PostgreSQL, and fills Redis in from it once Redis has room again."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.fixtures.consumer_bench import ConsumerBench
from tests.fixtures.net import free_port
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.expected import expected_stats, redis_stats, stored_stats
from tests.integration.consumer.helpers import counter, generate_events, running

pytestmark = pytest.mark.integration

ROOM_BYTES = 600_000  # room for a few hundred players' hashes, far fewer than the test's


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    """A Redis of the test's own that refuses writes once ROOM_BYTES more are used."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (make system-deps)"
    port = free_port()
    process = subprocess.Popen(
        [
            *(server, "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
            *("--maxmemory-policy", "noeviction"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, db=12, decode_responses=True)
    try:
        wait_for(_answers(client), timeout=20, what="the test's Redis to start")
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(used + ROOM_BYTES))
        yield f"redis://127.0.0.1:{port}/12", client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def _answers(client: redis.Redis) -> Callable[[], bool]:
    def ping() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    return ping


def test_a_full_redis_stalls_nothing_and_is_filled_in_once_it_has_room(
    bench: ConsumerBench, small_redis: tuple[str, redis.Redis]
) -> None:
    url, client = small_redis
    topic = bench.topic(partitions=3)
    events = generate_events(6000, seed=41, players=3000)
    expected = expected_stats(events)
    consumer = bench.consumer("stats", topic, redis_url=url, batch_size=500)
    with running(consumer):
        bench.produce(topic, events)
        bench.wait_processed(
            len(events), timeout=120, what="every event in PostgreSQL while Redis is full"
        )
        assert stored_stats(bench.dsn) == expected
        assert counter(consumer.metrics.redis_errors) >= 1, "Redis never refused a write"
        assert len(redis_stats(client)) < len(expected), "Redis held everything: not full"

        client.config_set("maxmemory", "0")  # room again (no limit)

        def filled_in() -> bool:
            try:
                return redis_stats(client) == expected
            except KeyError:  # read in the middle of a rebuild
                return False

        wait_for(filled_in, timeout=120, what="Redis to be filled in from PostgreSQL")
    assert bench.rows("SELECT count(*) FROM dlq_events") == [(0,)]  # no record was given up
