"""Fixtures of the consumer's integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from eventfleet.consumer.settings import ConsumerSettings
from tests.fixtures.consumer_bench import ConsumerBench
from tests.fixtures.stack import Stack
from tests.integration.consumer.helpers import CONSUMER_REDIS_DB, settings_for


@pytest.fixture
def consumer_redis(stack: Stack) -> Iterator[redis.Redis]:
    """The consumer tests' own Redis db, flushed before and after each test."""
    parts = urlsplit(stack.redis_url)
    client = redis.Redis.from_url(
        urlunsplit(parts._replace(path=f"/{CONSUMER_REDIS_DB}")), decode_responses=True
    )
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def consumer_settings(
    stack: Stack, consumer_group: str, postgres_dsn: str
) -> Callable[..., ConsumerSettings]:
    """Settings of a consumer of `topic` on the stack, in this test's group and database;
    `bootstrap`, `dsn` or `redis_url` point it elsewhere (a proxy, a private broker), any other
    keyword sets that setting."""

    def make(
        mode: str,
        topic: str,
        *,
        bootstrap: str | None = None,
        dsn: str | None = None,
        redis_url: str | None = None,
        **extra: Any,
    ) -> ConsumerSettings:
        return settings_for(
            mode,
            bootstrap=bootstrap or stack.kafka_bootstrap,
            topic=topic,
            group=consumer_group,
            dsn=dsn or postgres_dsn,
            redis_url=redis_url or stack.redis_url,
            **extra,
        )

    return make


@pytest.fixture
def bench(  # noqa: PLR0917 - the fixtures it gathers
    stack: Stack,
    create_topic: Callable[..., str],
    consumer_group: str,
    postgres_dsn: str,
    consumer_redis: redis.Redis,
    consumer_settings: Callable[..., ConsumerSettings],
) -> ConsumerBench:
    """The test's topics, group, database and Redis db, and consumers configured for them."""
    return ConsumerBench(
        stack, consumer_group, postgres_dsn, consumer_redis, create_topic, consumer_settings
    )
