"""Smoke tests that prove each service of the local stack is the real thing."""

from __future__ import annotations

from collections.abc import Callable

import psycopg2
import redis
from confluent_kafka import (
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from eventfleet.operator import kafka_admin as operator_kafka
from eventfleet.operator.kafka_auth import KafkaConnection
from tests.fixtures.stack import Stack

MESSAGES = 60
PLAYERS = 12
CONSUMED_BEFORE_COMMIT = 25


def _produce_keyed(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for index in range(MESSAGES):
        producer.produce(topic, key=f"player-{index % PLAYERS}", value=f"event-{index}")
    assert producer.flush(30) == 0, "messages still undelivered after 30 s"


def _consume(consumer: Consumer, count: int) -> list[Message]:
    taken: list[Message] = []
    for _ in range(200):  # bounded: 200 polls of at most 0.5 s
        if len(taken) >= count:
            break
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        assert error is None or error.code() == KafkaError._PARTITION_EOF, error
        if error is None:
            taken.append(message)
    return taken


def _lag_as_the_autoscaler_reads_it(bootstrap: str, group: str, topic: str) -> int:
    """High watermarks minus the group's committed offsets, read by the operator's own code (a
    consumer of the group for the committed offsets: librdkafka's admin ListConsumerGroupOffsets
    can crash the process on a NOT_COORDINATOR answer)."""
    readings = operator_kafka.group_offsets(KafkaConnection(bootstrap), topic, group)
    # A partition without a committed offset counts from its start.
    return sum(p.high - (p.low if p.committed is None else p.committed) for p in readings)


def test_kafka_keys_partitions_groups_and_lag(
    stack: Stack, kafka_admin: AdminClient, create_topic: Callable[..., str], consumer_group: str
) -> None:
    topic = create_topic(partitions=3)
    metadata = kafka_admin.list_topics(topic, timeout=10).topics[topic]
    assert len(metadata.partitions) == 3

    _produce_keyed(stack.kafka_bootstrap, topic)

    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": consumer_group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.subscribe([topic])
        taken = _consume(consumer, CONSUMED_BEFORE_COMMIT)
        assert len(taken) == CONSUMED_BEFORE_COMMIT

        # Keyed production: one player's events always land on one partition.
        partition_of: dict[bytes | str | None, set[int | None]] = {}
        for message in _consume(consumer, MESSAGES - CONSUMED_BEFORE_COMMIT) + taken:
            partition_of.setdefault(message.key(), set()).add(message.partition())
        assert all(len(parts) == 1 for parts in partition_of.values())
        assert len(partition_of) == PLAYERS

        # Commit only the first CONSUMED_BEFORE_COMMIT messages: next offset per partition.
        next_offsets: dict[int, int] = {}
        for message in taken:
            partition, offset = message.partition(), message.offset()
            assert partition is not None
            assert offset is not None
            next_offsets[partition] = max(next_offsets.get(partition, 0), offset + 1)
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in next_offsets.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()

    # Each partition is consumed in offset order, so what is left is everything after the
    # committed offsets: the lag the admin API reports must be exactly the unconsumed rest.
    lag = _lag_as_the_autoscaler_reads_it(stack.kafka_bootstrap, consumer_group, topic)
    assert lag == MESSAGES - CONSUMED_BEFORE_COMMIT


def test_postgres_round_trip(postgres_dsn: str) -> None:
    with psycopg2.connect(postgres_dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        row = cursor.fetchone()
        assert row is not None
        assert int(row[0]) >= 150000
        cursor.execute("CREATE TABLE scores (player_id text PRIMARY KEY, score bigint NOT NULL)")
        cursor.executemany(
            "INSERT INTO scores VALUES (%s, %s)", [("p1", 10), ("p2", 20), ("p3", 30)]
        )
        cursor.execute(
            "INSERT INTO scores VALUES ('p2', 5) "
            "ON CONFLICT (player_id) DO UPDATE SET score = scores.score + EXCLUDED.score"
        )
        cursor.execute("SELECT player_id, score FROM scores ORDER BY player_id")
        assert cursor.fetchall() == [("p1", 10), ("p2", 25), ("p3", 30)]
        cursor.execute("SELECT pg_try_advisory_xact_lock(42)")
        assert cursor.fetchone() == (True,)
    connection.close()


def test_redis_round_trip(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.dbsize() == 0
    version = client.info("server")["redis_version"]
    assert int(str(version).split(".")[0]) >= 6
    client.hset("player_stats:g1:p1", mapping={"matches": 3, "wins": 2})
    client.hincrby("player_stats:g1:p1", "wins", 1)
    assert client.hgetall("player_stats:g1:p1") == {"matches": "3", "wins": "3"}
    client.zadd("leaderboard:g1:total_score:all_time", {"p1": 50, "p2": 70, "p3": 60})
    top = client.zrevrange("leaderboard:g1:total_score:all_time", 0, 1, withscores=True)
    assert top == [("p2", 70.0), ("p3", 60.0)]
    client.close()
