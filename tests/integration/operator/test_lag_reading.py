"""The operator's lag reading on a brand-new cluster (a broker of the test's own): the group
coordinator is still loading, which once killed the operator with a segfault inside librdkafka's
admin ListConsumerGroupOffsets. It runs in a subprocess so that a crash fails this test instead
of the whole session."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.fixtures.private_kafka import PrivateKafka, private_kafka
from tests.fixtures.stack import REPO

pytestmark = pytest.mark.integration

READ_LAG = """
import json, sys
from eventfleet.operator import kafka_admin
from eventfleet.operator.kafka_auth import KafkaConnection
kafka = KafkaConnection(sys.argv[1])
readings = [kafka_admin.group_offsets(kafka, "lag", group) for group in sys.argv[2:]]
print(json.dumps([[[p.partition, p.low, p.high, p.committed] for p in r] for r in readings]))
"""


@pytest.fixture
def fresh_broker() -> Iterator[PrivateKafka]:
    with private_kafka() as started:
        yield started


def read_lag(bootstrap: str, *groups: str) -> list[list[list[int | None]]]:
    done = subprocess.run(
        [sys.executable, "-c", READ_LAG, bootstrap, *groups],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    readings: list[list[list[int | None]]] = json.loads(done.stdout)
    return readings


def test_lag_of_unseen_groups_on_a_fresh_cluster_is_read_not_a_crash(
    fresh_broker: PrivateKafka,
) -> None:
    fresh_broker.create_topic("lag", partitions=2)
    groups = [f"unseen-{n}" for n in range(5)]
    readings = read_lag(fresh_broker.bootstrap, *groups)
    # No committed offsets anywhere: reported as such (None), on both partitions, for each group.
    assert readings == [[[0, 0, 0, None], [1, 0, 0, None]]] * len(groups)

    committer = Consumer(
        {
            "bootstrap.servers": fresh_broker.bootstrap,
            "group.id": "seen",
            "enable.auto.commit": False,
        }
    )
    committer.commit(offsets=[TopicPartition("lag", 1, 0)], asynchronous=False)
    committer.close()
    assert read_lag(fresh_broker.bootstrap, "seen") == [[[0, 0, 0, None], [1, 0, 0, 0]]]
