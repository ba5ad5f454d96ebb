"""The gateway against Kafka's SASL_SSL listener, its credentials from a binding file (JSON) or
directory (a mounted Secret): accepted events reach Kafka; a wrong password is 503, not a crash."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.secured_kafka import ScramUser
from tests.fixtures.stack import Stack
from tests.integration.gateway.harness import consume_all, running_gateway
from tests.integration.gateway.test_gateway import EVENTS, event

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("form", ["directory", "json"])
def test_events_reach_kafka_over_sasl_ssl(  # noqa: PLR0917 - fixtures
    stack: Stack,
    scram_user: ScramUser,
    create_topic: Callable[..., str],
    consumer_group: str,
    tmp_path: Path,
    form: str,
) -> None:
    topic = create_topic(partitions=1)
    binding = (
        scram_user.write(tmp_path / "binding")
        if form == "directory"
        else scram_user.write_json(tmp_path / "kafka.json")
    )
    with running_gateway(
        tmp_path, stack.kafka_sasl_bootstrap, topic, "--kafka-auth", str(binding)
    ) as gateway:
        answers = [gateway.post(EVENTS, event(player=f"p{n}")) for n in range(5)]
        assert [a.status for a in answers] == [202] * 5
        log = gateway.output()
    found = consume_all(stack.kafka_bootstrap, topic, consumer_group, expected=5)
    assert sorted(value["player_id"] for _key, value in found) == [f"p{n}" for n in range(5)]
    assert scram_user.password not in log


def test_a_wrong_password_is_503_not_a_crash(
    stack: Stack, scram_user: ScramUser, create_topic: Callable[..., str], tmp_path: Path
) -> None:
    wrong = "not-the-password-4711"
    binding = scram_user.write(tmp_path / "binding", password=wrong)
    with running_gateway(
        tmp_path,
        stack.kafka_sasl_bootstrap,
        create_topic(partitions=1),
        "--kafka-auth",
        str(binding),
        "--delivery-timeout-ms",
        "2000",
        wait="alive",
    ) as gateway:
        time.sleep(3)
        assert gateway.request("GET", "/readyz").status == 503
        assert gateway.post(EVENTS, event()).status == 503
        assert gateway.process.poll() is None
        log = gateway.output()
    assert wrong not in log
