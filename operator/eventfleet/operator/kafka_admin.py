"""Kafka I/O for the operator: topics and consumer-group offsets. Thin: every decision about
what to do with the answers lives in topics.py and scaling.py.

One AdminClient per connection (bootstrap list and credentials, kafka_auth.KafkaConnection),
shared by every EventConsumer that reaches the cluster that way. Every call has a timeout; a
failure raises KafkaUnavailableError (the handlers turn it into a condition and a retry), never a
hang, or KafkaAuthFailedError when Kafka refused the credentials or the TLS handshake failed.

Committed offsets are read through a consumer of the group (never subscribed, so it never joins
the group), not through the AdminClient: librdkafka's admin ListConsumerGroupOffsets dereferences
a NULL group handle when the broker answers NOT_COORDINATOR (a fresh cluster whose offsets topic
is still loading, or a coordinator moving), which kills the whole operator with a segfault. The
consumer's own group handle takes that answer in its stride and retries.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from eventfleet.contract.kafka_errors import refusal_reason
from eventfleet.operator.kafka_auth import KafkaConnection
from eventfleet.operator.scaling import PartitionOffsets
from eventfleet.operator.spec import TopicSpec
from eventfleet.operator.topics import ObservedTopic, TopicPlan

TIMEOUT_SECONDS: Final = 10.0


class KafkaUnavailableError(Exception):
    """Kafka could not answer in time (or refused): the caller retries later."""


class KafkaAuthFailedError(KafkaUnavailableError):
    """Kafka refused the credentials (SASL) or the TLS handshake failed (certificates)."""


class TopicMissingError(Exception):
    """The topic does not exist."""


class _AuthWatch:
    """The last authentication or TLS failure a client's error callback reported."""

    def __init__(self) -> None:
        self.failure: str | None = None

    def __call__(self, error: KafkaError) -> None:
        # librdkafka reports these through the error callback only; a request just times out.
        if refusal_reason(error.name(), error.str()) is not None:
            self.failure = error.str()
        elif error.code() != KafkaError._ALL_BROKERS_DOWN:
            self.failure = None

    def check(self, client: Any, what: str) -> None:
        """Raise KafkaAuthFailedError if the client's last failure was one of credentials."""
        client.poll(0)  # serves the error callback
        if self.failure is not None:
            raise KafkaAuthFailedError(f"{what}: Kafka refused the connection: {self.failure}")


_clients: dict[KafkaConnection, tuple[AdminClient, _AuthWatch]] = {}
_clients_lock = threading.Lock()


def _client(connection: KafkaConnection) -> tuple[AdminClient, _AuthWatch]:
    with _clients_lock:
        found = _clients.get(connection)
        if found is None:
            watch = _AuthWatch()
            settings: dict[str, Any] = {
                **connection.config(),
                "client.id": "eventfleet-operator",
                "socket.timeout.ms": int(TIMEOUT_SECONDS * 1000),
                "reconnect.backoff.max.ms": 5000,
                "error_cb": watch,
            }
            client = AdminClient(settings)
            found = _clients[connection] = (client, watch)
        return found


def admin_for(connection: KafkaConnection) -> AdminClient:
    return _client(connection)[0]


def _wait(future: Any, what: str, connection: KafkaConnection) -> Any:
    try:
        return future.result(timeout=TIMEOUT_SECONDS)
    except KafkaException as error:
        _auth_check(connection, what)
        raise KafkaUnavailableError(f"{what}: {error.args[0]}") from error
    except TimeoutError as error:
        _auth_check(connection, what)
        raise KafkaUnavailableError(f"{what}: no answer within {TIMEOUT_SECONDS:.0f}s") from error


def _auth_check(connection: KafkaConnection, what: str) -> None:
    client, watch = _client(connection)
    watch.check(client, what)


def _is_unknown_topic(error: KafkaException) -> bool:
    reason = error.args[0] if error.args else None
    return isinstance(reason, KafkaError) and reason.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def describe_topic(connection: KafkaConnection, topic: str) -> ObservedTopic | None:
    """What Kafka knows of the topic, or None when it does not exist."""
    admin = admin_for(connection)
    description = _description(connection, topic)
    if description is None:
        return None
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = _wait(
        admin.describe_configs([resource], request_timeout=TIMEOUT_SECONDS)[resource],
        f"reading the configuration of topic {topic}",
        connection,
    )
    partitions = description.partitions
    return ObservedTopic(
        partitions=len(partitions),
        replication_factor=len(partitions[0].replicas) if partitions else 0,
        config={name: entry.value for name, entry in configs.items() if entry.value is not None},
    )


def topic_id(connection: KafkaConnection, topic: str) -> str | None:
    """Kafka's id of the topic (a new one each time a topic of this name is created), or None
    when it does not exist."""
    description = _description(connection, topic)
    return None if description is None else str(description.topic_id)


def _description(connection: KafkaConnection, topic: str) -> Any:
    """Kafka's TopicDescription of the topic, or None when it does not exist."""
    admin = admin_for(connection)
    futures = admin.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT_SECONDS)
    try:
        return futures[topic].result(timeout=TIMEOUT_SECONDS)
    except KafkaException as error:
        if _is_unknown_topic(error):
            return None
        _auth_check(connection, f"describing topic {topic}")
        raise KafkaUnavailableError(f"describing topic {topic}: {error.args[0]}") from error
    except TimeoutError as error:
        _auth_check(connection, f"describing topic {topic}")
        raise KafkaUnavailableError(f"describing topic {topic}: no answer") from error


def apply_topic_plan(
    connection: KafkaConnection, topic: str, spec: TopicSpec, plan: TopicPlan
) -> None:
    admin = admin_for(connection)
    if plan.create:
        new = NewTopic(
            topic,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            config=dict(spec.config),
        )
        futures = admin.create_topics(
            [new], operation_timeout=TIMEOUT_SECONDS, request_timeout=TIMEOUT_SECONDS
        )
        _wait(futures[topic], f"creating topic {topic}", connection)
        return
    if plan.grow_to is not None:
        futures = admin.create_partitions(
            [NewPartitions(topic, plan.grow_to)],
            operation_timeout=TIMEOUT_SECONDS,
            request_timeout=TIMEOUT_SECONDS,
        )
        _wait(futures[topic], f"growing topic {topic} to {plan.grow_to} partitions", connection)
    if plan.set_config:
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                for name, value in sorted(plan.set_config.items())
            ],
        )
        altered = admin.incremental_alter_configs([resource], request_timeout=TIMEOUT_SECONDS)
        _wait(altered[resource], f"correcting the configuration of topic {topic}", connection)


def delete_topic(connection: KafkaConnection, topic: str) -> None:
    admin = admin_for(connection)
    futures = admin.delete_topics(
        [topic], operation_timeout=TIMEOUT_SECONDS, request_timeout=TIMEOUT_SECONDS
    )
    try:
        futures[topic].result(timeout=TIMEOUT_SECONDS)
    except TimeoutError as error:  # no broker answered at all
        raise KafkaUnavailableError(f"deleting topic {topic}: no answer from Kafka") from error
    except KafkaException as error:
        if not _is_unknown_topic(error):
            _auth_check(connection, f"deleting topic {topic}")
            raise KafkaUnavailableError(f"deleting topic {topic}: {error.args[0]}") from error


def group_offsets(connection: KafkaConnection, topic: str, group: str) -> list[PartitionOffsets]:
    """Per partition: earliest and latest offsets, and the group's committed offset."""
    admin = admin_for(connection)
    # Only the partition count is needed here: cluster metadata, not describe_topic (which also
    # fetches the topic's configuration), keeps a lag poll to three requests.
    try:
        metadata = admin.list_topics(topic, timeout=TIMEOUT_SECONDS).topics.get(topic)
    except KafkaException as error:
        _auth_check(connection, f"reading metadata of topic {topic}")
        raise KafkaUnavailableError(
            f"reading metadata of topic {topic}: {error.args[0]}"
        ) from error
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise TopicMissingError(topic)
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
    committed: Mapping[int, int] = _committed(connection, group, partitions)
    earliest = _offsets(connection, partitions, OffsetSpec.earliest())
    latest = _offsets(connection, partitions, OffsetSpec.latest())
    return [
        PartitionOffsets(
            partition=tp.partition,
            low=earliest[tp.partition],
            high=latest[tp.partition],
            committed=committed.get(tp.partition) if committed.get(tp.partition, -1) >= 0 else None,
        )
        for tp in partitions
    ]


def _offsets(
    connection: KafkaConnection, partitions: list[TopicPartition], spec: Any
) -> dict[int, int]:
    futures = admin_for(connection).list_offsets(
        dict.fromkeys(partitions, spec), request_timeout=TIMEOUT_SECONDS
    )
    return {
        tp.partition: _wait(future, "listing offsets", connection).offset
        for tp, future in futures.items()
    }


# One reader per (connection, group), closed after a while unused (the EventConsumer is gone).
# Each is a librdkafka consumer: about 0.56 MB, 4 threads and 8 file descriptors. At most
# MAX_READERS are kept; past that the least recently used is closed, so with more groups than
# that each poll makes (and later closes) a reader of its own: about 3.4 ms of CPU and 25 ms of
# wall time against 0.1 and 1 ms for a kept one. 500 kept readers took 280 MB.
READER_IDLE_SECONDS: Final = 600.0
MAX_READERS: Final = 32
COORDINATOR_RETRY_SECONDS: Final = 0.2
_COORDINATOR_BUSY: Final = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


class _GroupReader:
    def __init__(self, connection: KafkaConnection, group: str) -> None:
        self.consumer = Consumer(
            {
                **connection.config(),
                "group.id": group,
                "client.id": "eventfleet-operator-lag",
                "enable.auto.commit": False,
                "socket.timeout.ms": int(TIMEOUT_SECONDS * 1000),
                "reconnect.backoff.max.ms": 5000,
            }
        )
        self.lock = threading.Lock()  # one committed() at a time per client
        self.used = time.monotonic()
        self.closed = False

    def close(self) -> None:
        with self.lock:  # a reader still at work for its poll is closed once it is done
            self.closed = True
            self.consumer.close()


_readers: OrderedDict[tuple[KafkaConnection, str], _GroupReader] = OrderedDict()  # LRU first


def _committed(
    connection: KafkaConnection, group: str, partitions: list[TopicPartition]
) -> dict[int, int]:
    """The group's committed offset per partition (partitions without one are left out)."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        reader = _reader(connection, group)
        with reader.lock:
            if reader.closed:  # retired between _reader and here: the next one is new
                continue
            reader.used = time.monotonic()
            found = _ask(reader, connection, group, partitions, deadline)
            return {tp.partition: tp.offset for tp in found if tp.error is None and tp.offset >= 0}


def _ask(
    reader: _GroupReader,
    connection: KafkaConnection,
    group: str,
    partitions: list[TopicPartition],
    deadline: float,
) -> list[TopicPartition]:
    while True:
        try:
            found: list[TopicPartition] = reader.consumer.committed(
                partitions, timeout=max(deadline - time.monotonic(), 0.1)
            )
        except KafkaException as error:
            # The coordinator is loading or moving: ask again until the deadline.
            if error.args[0].code() in _COORDINATOR_BUSY and time.monotonic() < deadline:
                time.sleep(COORDINATOR_RETRY_SECONDS)
                continue
            _auth_check(connection, f"reading the offsets of group {group}")
            raise KafkaUnavailableError(
                f"reading the offsets of group {group}: {error.args[0]}"
            ) from error
        return found


def _reader(connection: KafkaConnection, group: str) -> _GroupReader:
    now = time.monotonic()
    retired: list[_GroupReader] = []
    with _clients_lock:
        reader = _readers.get((connection, group))
        if reader is None:
            reader = _readers[(connection, group)] = _GroupReader(connection, group)
        reader.used = now  # taken: neither idle nor least recently used
        _readers.move_to_end((connection, group))
        for key, other in list(_readers.items()):
            if other is not reader and (
                len(_readers) > MAX_READERS or now - other.used > READER_IDLE_SECONDS
            ):
                retired.append(_readers.pop(key))
    for other in retired:
        other.close()
    return reader


def close_readers() -> None:
    """Close every group reader (operator shutdown)."""
    with _clients_lock:
        readers = list(_readers.values())
        _readers.clear()
    for reader in readers:
        reader.close()
