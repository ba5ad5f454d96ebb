"""A DSN's own libpq options survive the consumer's bounded-wait options: a sink placed in a
schema of its own (options=-csearch_path=...) is migrated and written there, not in public."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql

from tests.fixtures.consumer_bench import ConsumerBench
from tests.integration.consumer.helpers import event_now, run_until_done

pytestmark = pytest.mark.integration
EVENTS = 30


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"sink_{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(postgres_dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    connection.close()
    yield name
    with psycopg2.connect(postgres_dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    connection.close()


def test_a_sink_in_its_own_schema_is_written_there(bench: ConsumerBench, schema: str) -> None:
    topic = bench.topic_with(
        [event_now("player_login", f"p{n}", platform="pc") for n in range(EVENTS)], partitions=1
    )
    separator = "&" if "?" in bench.dsn else "?"
    option = urllib.parse.quote(f"-csearch_path={schema}")
    dsn = f"{bench.dsn}{separator}options={option}"
    run_until_done(bench.consumer("logger", topic, dsn=dsn), EVENTS)
    with psycopg2.connect(bench.dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT count(*) FROM {}.events").format(sql.Identifier(schema)))
        assert cursor.fetchone() == (EVENTS,)
        cursor.execute("SELECT to_regclass('public.events') IS NULL")
        assert cursor.fetchone() == (True,), "the sink was written to the public schema"
    connection.close()
