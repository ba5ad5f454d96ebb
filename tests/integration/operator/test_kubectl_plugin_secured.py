"""`kubectl eventfleet status` against an EventConsumer on Kafka's SASL_SSL listener: the lag is
read with the EventConsumer's binding Secret, or with a binding file given by --kafka-auth, and
credentials Kafka refuses are said in the lag table, the password never."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.secured_kafka import ScramUser
from tests.fixtures.stack import Stack
from tests.integration.operator.cluster import Cluster, Plugin, produce, sasl_body

pytestmark = pytest.mark.usefixtures("operator", "podrunner")
WRONG = "not-the-password-4711"


def lag_rows(screen: str) -> list[list[str]]:
    lines = screen.splitlines()
    start = lines.index("Lag per partition (read now):")
    return [line.split() for line in lines[start + 2 : start + 5]]


def test_status_reads_lag_over_sasl_ssl_with_the_binding_secret_or_a_file(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    stack: Stack,
    kafka_user: ScramUser,
    topic_name: str,
    plugin: Plugin,
    tmp_path: Path,
) -> None:
    ns = cluster.namespace
    cluster.create(sasl_body(ns, "logger", stack, topic_name))
    cluster.wait_condition("logger", "Ready", "True", timeout=60)
    produce(stack, topic_name, 30)
    cluster.wait_consumed("logger")

    for extra in ([], ["--kafka-auth", str(kafka_user.write_json(tmp_path / "kafka.json"))]):
        shown = plugin("status", "logger", "-n", ns, *extra)
        assert shown.returncode == 0, shown.stderr
        rows = lag_rows(shown.stdout)
        assert [r[0] for r in rows] == ["0", "1", "2"], shown.stdout
        assert sum(int(r[2]) for r in rows) == 30  # the end offsets, read over SASL_SSL
        assert all(r[3] == "0" for r in rows)  # the group's commits, read too
        assert kafka_user.password not in shown.stdout + shown.stderr

    wrong = kafka_user.write(tmp_path / "wrong", password=WRONG)
    refused = plugin("status", "logger", "-n", ns, "--kafka-auth", str(wrong))
    assert refused.returncode == 0, refused.stderr
    line = next(x for x in refused.stdout.splitlines() if x.startswith("Lag per partition"))
    assert "not readable from here (Kafka: " in line
    assert "Kafka refused the connection" in line
    assert WRONG not in refused.stdout + refused.stderr
