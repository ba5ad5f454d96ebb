"""Pure parts of hack/fleetstack/, the local stack behind hack/stack (it runs on the system python,
outside the package)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.scripts import hack_module

cli = hack_module("fleetstack.cli")
common = hack_module("fleetstack.common")
kafka = hack_module("fleetstack.kafka")
processes = hack_module("fleetstack.processes")
redis = hack_module("fleetstack.redis")


@pytest.mark.parametrize("raw", ["abc", "0", "70000", "-5", "", "59092x"])
def test_bad_port_variables_are_refused_with_the_variable_name(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTFLEET_REDIS_PORT", raw)
    with pytest.raises(common.StackError) as caught:
        redis.Redis().ports()
    assert f"EVENTFLEET_REDIS_PORT={raw!r} is not a TCP port" in str(caught.value)


def test_cluster_id_is_a_kafka_uuid() -> None:
    cluster_id = kafka.kafka_cluster_id()
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert kafka.kafka_cluster_id() != cluster_id


def test_only_the_recorded_process_counts_as_ours() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        owned = processes.OwnedProcess.of(child.pid)
        assert owned is not None
        assert owned.alive()
        # Same pid, another start time: a recycled pid belonging to someone else.
        assert not processes.OwnedProcess(child.pid, owned.start_ticks + 1).alive()
        owned.stop(grace_seconds=5)
        assert not owned.alive()
        assert child.wait(timeout=5) == -15  # stopped by SIGTERM, the polite way
    finally:
        child.kill()


def test_error_rendering_names_component_log_and_fix(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    log.write_text("line one\nERROR the broker failed\n")
    text = common.StackError(
        "kafka", "the process exited while starting", log, "`hack/stack reset kafka`"
    ).render()
    assert text.splitlines()[0] == "✗ kafka: the process exited while starting"
    assert f"log: {log}" in text
    assert "| ERROR the broker failed" in text
    assert "likely fix: `hack/stack reset kafka`" in text


def test_unknown_component_is_refused() -> None:
    with pytest.raises(common.StackError, match="unknown component\\(s\\) kafak"):
        cli.select(["kafak"])
