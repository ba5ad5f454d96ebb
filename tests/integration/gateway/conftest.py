"""Fixtures of the gateway's integration tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.gateway_topic import GatewayTopic
from tests.fixtures.stack import Stack


@pytest.fixture
def gateway_topic(
    stack: Stack, create_topic: Callable[..., str], consumer_group: str, tmp_path: Path
) -> GatewayTopic:
    """A 3-partition topic of the test's own, gateways for it, and what reached it."""
    return GatewayTopic(stack, create_topic(), consumer_group, tmp_path)
