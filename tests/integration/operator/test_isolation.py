"""One EventConsumer whose Kafka swallows traffic does not hold up another one's decisions:
the autoscaling loop works per object, with no barrier across them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from eventfleet.operator.autoscaler import TICK_SECONDS
from tests.fixtures.net import Blackhole
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import (
    POLL_SECONDS,
    Cluster,
    body,
    produce,
    scaled_from_zero,
)

pytestmark = pytest.mark.usefixtures("operator", "podrunner")


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


def test_a_kafka_that_swallows_traffic_delays_no_other_decision(
    cluster: Cluster, stack: Stack, topic_name: str, blackhole: Blackhole
) -> None:
    stuck = body(
        cluster.namespace, "stuck", stack, f"{topic_name}.stuck", replicas={"min": 0, "max": 2}
    )
    stuck["spec"]["kafka"]["bootstrapServers"] = f"127.0.0.1:{blackhole.port}"
    stuck["spec"]["mode"] = "stats"  # its own sink: the logger's belongs to the healthy one
    stuck["spec"]["redis"] = {"urlSecretRef": {"name": "cache", "key": "url"}}
    cluster.create(stuck)
    cluster.create(
        body(cluster.namespace, "healthy", stack, topic_name, **scaled_from_zero(3, 100))
    )
    cluster.wait_condition("healthy", "Ready", "True", timeout=60)
    time.sleep(2 * POLL_SECONDS)  # the stuck one's passes are at work (each waits on Kafka)

    produce(stack, topic_name, 3000)
    produced = time.monotonic()
    wait_for(
        lambda: cluster.get("healthy")["status"].get("lastScale", {}).get("to", 0) > 0,
        timeout=60,
        what="the healthy EventConsumer's scale-up",
    )
    took = time.monotonic() - produced
    print(f"\nscale-up decision {took:.1f}s after the backlog, beside a stuck EventConsumer")
    # At most one poll interval until the next poll, plus a tick for the pass to run and one
    # for the status to be read back; a barrier across objects adds the stuck one's Kafka
    # timeouts (10 s each) to every tick.
    assert took <= POLL_SECONDS + 3 * TICK_SECONDS, took
