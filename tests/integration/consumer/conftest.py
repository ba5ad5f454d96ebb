"""Fixtures of the consumer's integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.fixtures.stack import Stack
from tests.integration.consumer.helpers import CONSUMER_REDIS_DB


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
