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
from confluent_kafka.admin import AdminClient, NewTopic

from tests.fixtures.private_kafka import PrivateKafka, private_kafka
from tests.fixtures.stack import REPO, Stack

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


def test_group_readers_are_bounded_and_each_group_reads_its_own_offsets(
    stack: Stack, kafka_admin: AdminClient, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One librdkafka consumer per consumer group cost 0.56 MB, 4 threads and 8 files each (280
    MB at 500 EventConsumers): past kafka_admin.MAX_READERS the least recently used goes, and
    a group read again after that gets a reader of its own again, with its own offsets."""
    from eventfleet.operator import kafka_admin as admin  # noqa: PLC0415 - the module under test
    from eventfleet.operator.kafka_auth import KafkaConnection  # noqa: PLC0415

    kafka_admin.create_topics([NewTopic(topic_name, 2, 1)])[topic_name].result(30)
    groups = [f"{topic_name}.readers.{n}" for n in range(6)]
    for index, group in enumerate(groups):  # group n committed offset n on partition 0
        committer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": group})
        committer.commit(offsets=[TopicPartition(topic_name, 0, index)], asynchronous=False)
        committer.close()
    monkeypatch.setattr(admin, "MAX_READERS", 3)
    connection = KafkaConnection(stack.kafka_bootstrap)
    try:
        for _round in range(2):
            for index, group in enumerate(groups):
                read = admin.group_offsets(connection, topic_name, group)
                assert [(p.partition, p.committed) for p in read] == [(0, index), (1, None)]
                assert len(admin._readers) <= 3  # the bound under test
    finally:
        admin.close_readers()
