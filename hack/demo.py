"""`make demo`: for now, the local stack the pipeline will run on, checked end to end.

The full pipeline demo (operator, consumers, gateway, load) replaces this once those land; until
then it proves every service answers and shows how to reach each one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    bootstrap = os.environ["EVENTFLEET_KAFKA_BOOTSTRAP"]
    dsn = os.environ["EVENTFLEET_POSTGRES_DSN"]
    redis_url = os.environ["EVENTFLEET_REDIS_URL"]

    print("The local stack:")
    status = subprocess.run([REPO / "hack" / "stack", "status"], check=False)
    if status.returncode != 0:
        print("a component is unhealthy: see its log above", file=sys.stderr)
        return 1

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        row = cursor.fetchone()
    connection.close()
    redis_version = redis.Redis.from_url(redis_url).info("server")["redis_version"]

    # One message through a real topic, to show Kafka accepts and serves data.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"demo-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key="player-1", value=b'{"event_type": "player_login"}')
    producer.flush(10)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    message = None
    for _ in range(40):
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            break
    consumer.close()
    admin.delete_topics([topic])[topic].result(30)
    round_trip = message is not None and message.error() is None

    print()
    print(f"PostgreSQL  {row[0].split(',')[0] if row else '?'}  {dsn}")
    print(f"Redis       {redis_version}  {redis_url}")
    print(
        f"Kafka       bootstrap {bootstrap}; produce → consume round trip: "
        f"{'ok' if round_trip else 'FAILED'}"
    )
    print()
    print("Explore:")
    print("  source <(hack/stack env)        # the addresses, as shell variables")
    print('  psql "$EVENTFLEET_POSTGRES_DSN"')
    print('  redis-cli -u "$EVENTFLEET_REDIS_URL"')
    print("  hack/stack status | down         # health, or stop everything")
    print()
    print("The operator, consumers and gateway are not built yet: this demo grows with them.")
    return 0 if round_trip else 1


if __name__ == "__main__":
    sys.exit(main())
