"""`kubectl eventfleet status` against an EventConsumer on Kafka's SASL_SSL listener: the lag is
read with the EventConsumer's binding Secret, or with a binding file given by --kafka-auth, and
credentials Kafka refuses are said in the lag table, the password never."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.secured_kafka import ScramUser
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import Cluster, produce
from tests.integration.operator.test_kafka_auth import _put_secret, _secured
from tests.integration.operator.test_kubectl_plugin import plugin

pytestmark = pytest.mark.usefixtures("operator", "podrunner")
__all__ = ["plugin"]  # the fixture, shared with the plugin's other tests
WRONG = "not-the-password-4711"


def lag_rows(screen: str) -> list[list[str]]:
    lines = screen.splitlines()
    start = lines.index("Lag per partition (read now):")
    return [line.split() for line in lines[start + 2 : start + 5]]


def test_status_reads_lag_over_sasl_ssl_with_the_binding_secret_or_a_file(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    stack: Stack,
    scram_user: ScramUser,
    topic_name: str,
    plugin: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    ns = cluster.namespace
    _put_secret(cluster, "kafka-user", scram_user.binding())
    cluster.create(_secured(cluster, stack, topic_name))
    cluster.wait_condition("logger", "Ready", "True", timeout=60)
    produce(stack, topic_name, 30)
    wait_for(lambda: cluster.get("logger")["status"].get("lag", {}).get("total") == 0,
             timeout=60, what="the events consumed")  # fmt: skip

    for extra in ([], ["--kafka-auth", str(scram_user.write_json(tmp_path / "kafka.json"))]):
        shown = plugin("status", "logger", "-n", ns, *extra)
        assert shown.returncode == 0, shown.stderr
        rows = lag_rows(shown.stdout)
        assert [r[0] for r in rows] == ["0", "1", "2"], shown.stdout
        assert sum(int(r[2]) for r in rows) == 30  # the end offsets, read over SASL_SSL
        assert all(r[3] == "0" for r in rows)  # the group's commits, read too
        assert scram_user.password not in shown.stdout + shown.stderr

    wrong = scram_user.write(tmp_path / "wrong", password=WRONG)
    refused = plugin("status", "logger", "-n", ns, "--kafka-auth", str(wrong))
    assert refused.returncode == 0, refused.stderr
    line = next(x for x in refused.stdout.splitlines() if x.startswith("Lag per partition"))
    assert "not readable from here (Kafka: " in line
    assert "Kafka refused the connection" in line
    assert WRONG not in refused.stdout + refused.stderr
