"""`kubectl eventfleet` as kubectl runs it (a `kubectl-eventfleet` on the PATH), against the real
API server with an operator and consumers running: status, pause/resume, scale, dlq, report."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import Cluster, Plugin, body, produce

pytestmark = pytest.mark.usefixtures("operator", "podrunner")


def test_the_plugin_shows_and_operates_an_eventconsumer(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    stack: Stack,
    topic_name: str,
    postgres_dsn: str,
    plugin: Plugin,
    tmp_path: Path,
) -> None:
    ns = cluster.namespace
    cluster.create(body(ns, "plugged", stack, topic_name))
    cluster.wait_condition("plugged", "Ready", "True", timeout=60)
    produce(stack, topic_name, 30)
    cluster.wait_consumed("plugged")

    shown = plugin("status", "plugged", "-n", ns)
    assert shown.returncode == 0, shown.stderr
    print(f"\n{shown.stdout}")  # the screen, for whoever runs this with -s
    status = cluster.get("plugged")["status"]
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"{ns}/plugged  {status['phase']}  mode logger  topic {topic_name}")
    for condition in status["conditions"]:
        row = next(line.split() for line in lines if line.split()[:1] == [condition["type"]])
        assert row[1:3] == [condition["status"], condition["reason"]], row
    partitions = lines.index("Lag per partition (read now):")
    rows = [line.split() for line in lines[partitions + 2 : partitions + 5]]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert sum(int(r[2]) for r in rows) == 30  # the end offsets: every event produced
    assert all(r[3] == "0" for r in rows)  # all consumed
    assert "Dead letters: 0 in the last hour, 0 in the last day (none)" in lines
    assert plugin("status", "nope", "-n", ns).stderr.strip() == (
        f"kubectl eventfleet: no EventConsumer {ns}/nope"
    )

    assert plugin("pause", "plugged", "-n", ns).returncode == 0
    assert cluster.get("plugged")["spec"]["paused"] is True
    wait_for(lambda: cluster.get("plugged")["status"].get("phase") == "Paused", timeout=30,
             what="the Paused phase")  # fmt: skip
    assert "(paused (hands off))" in plugin("status", "plugged", "-n", ns).stdout
    assert plugin("resume", "plugged", "-n", ns).returncode == 0
    assert cluster.get("plugged")["spec"]["paused"] is False

    scaled = plugin("scale", "plugged", "3", "-n", ns)
    assert scaled.returncode == 0, scaled.stderr
    spec = cluster.get("plugged")["spec"]
    assert (spec["autoscaling"]["enabled"], spec["replicas"]["count"]) == (False, 3)
    wait_for(lambda: (cluster.deployment("plugged") or object()).spec.replicas == 3,  # type: ignore[attr-defined]
             timeout=30, what="the Deployment at 3 replicas")  # fmt: skip
    assert plugin("scale", "plugged", "-n", ns).returncode == 2  # neither a count nor --auto
    assert plugin("scale", "plugged", "--auto", "-n", ns).returncode == 0
    spec = cluster.get("plugged")["spec"]
    assert spec["autoscaling"]["enabled"] is True
    assert "count" not in spec["replicas"]

    listed = plugin("dlq", "plugged", "-n", ns, "list")
    assert (listed.returncode, listed.stdout) == (0, "no dead letters match\n"), listed.stderr

    report = tmp_path / "report.tar.gz"
    written = plugin("report", "-n", ns, "-o", str(report))
    assert written.returncode == 0, written.stderr
    with tarfile.open(report) as tar:
        names = tar.getnames()
        texts = {n: tar.extractfile(n).read().decode() for n in names if tar.getmember(n).isfile()}  # type: ignore[union-attr]
    assert "eventfleet-report/README.txt" in names
    assert "plugged" in texts["eventfleet-report/eventconsumers.json"]
    assert f"eventfleet-report/{ns}/events.json" in names
    assert not any(postgres_dsn in text for text in texts.values())
