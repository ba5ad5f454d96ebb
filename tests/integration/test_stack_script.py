"""`hack/stack` on bad ground: taken ports, damaged data, dead processes. Each test runs its own
throw-away stack (own folder, own ports) so the shared stack is never disturbed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.net import free_port

REPO = Path(__file__).resolve().parents[2]
# Not pytest's tmp_path (mode 0700): user postgres must be able to reach the data folder.
SCRATCH_ROOT = Path(tempfile.gettempdir()) / "eventfleet-stack-tests"
COMMAND_TIMEOUT = 120  # every call must end by itself well before this


@dataclass
class ScratchStack:
    home: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / "hack" / "stack"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )


@pytest.fixture
def scratch() -> Iterator[ScratchStack]:
    SCRATCH_ROOT.mkdir(mode=0o755, exist_ok=True)
    home = SCRATCH_ROOT / uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        "EVENTFLEET_STACK_DIR": str(home),
        "EVENTFLEET_POSTGRES_PORT": str(free_port()),
        "EVENTFLEET_REDIS_PORT": str(free_port()),
        "EVENTFLEET_KAFKA_PORT": str(free_port()),
        "EVENTFLEET_KAFKA_CONTROLLER_PORT": str(free_port()),
        "EVENTFLEET_KAFKA_SASL_PORT": str(free_port()),
        "EVENTFLEET_KAFKA_SSL_PORT": str(free_port()),
    }
    made = ScratchStack(home, env)
    yield made
    made.run("down")
    shutil.rmtree(home, ignore_errors=True)


def test_up_reuses_status_reports_and_down_stops_only_its_own(scratch: ScratchStack) -> None:
    first = scratch.run("up", "redis")
    assert first.returncode == 0, first.stderr
    assert "redis" in first.stdout
    assert "started" in first.stdout
    pid = json.loads((scratch.home / "redis" / "pid.json").read_text())["pid"]

    again = scratch.run("up", "redis")
    assert again.returncode == 0
    assert f"reused (pid {pid})" in again.stdout

    status = scratch.run("status", "redis")
    assert status.returncode == 0
    assert "✓ redis" in status.stdout
    assert "healthy" in status.stdout

    # A process that is not the stack's keeps running through `down`.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        down = scratch.run("down")
        assert down.returncode == 0
        assert "stopped" in down.stdout
        assert bystander.poll() is None
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    finally:
        bystander.kill()
    after = scratch.run("status", "redis")
    assert after.returncode == 1
    assert "✗ redis" in after.stdout
    assert "not running" in after.stdout


def test_a_taken_port_names_the_component_the_port_and_its_holder(scratch: ScratchStack) -> None:
    port = int(scratch.env["EVENTFLEET_REDIS_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = scratch.run("up", "redis")
    assert result.returncode == 1
    assert f"✗ redis: port 127.0.0.1:{port} is already in use by pid {os.getpid()}" in result.stderr
    assert "likely fix:" in result.stderr
    assert not (scratch.home / "redis" / "pid.json").exists()


def test_a_dead_component_is_found_and_started_again(scratch: ScratchStack) -> None:
    assert scratch.run("up", "redis").returncode == 0
    pid = json.loads((scratch.home / "redis" / "pid.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    result = scratch.run("up", "redis")
    assert result.returncode == 0, result.stderr
    assert "found dead (stale pid file); starting it again" in result.stdout
    assert scratch.run("status", "redis").returncode == 0


def test_a_damaged_pid_file_is_not_trusted(scratch: ScratchStack) -> None:
    (scratch.home / "redis").mkdir(parents=True)
    (scratch.home / "redis" / "pid.json").write_text("{not json")
    result = scratch.run("up", "redis")
    assert result.returncode == 0, result.stderr
    assert scratch.run("status", "redis").returncode == 0


def test_damaged_kafka_data_is_refused_with_the_reset_command(scratch: ScratchStack) -> None:
    data = scratch.home / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "leftover.log").write_text("garbage")
    result = scratch.run("up", "kafka")
    assert result.returncode == 1
    assert "✗ kafka:" in result.stderr
    assert "holds files but no meta.properties" in result.stderr
    assert "hack/stack reset kafka" in result.stderr


def test_postgres_that_will_not_start_names_its_log(scratch: ScratchStack) -> None:
    data = scratch.home / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")  # looks initialised, holds nothing usable
    if os.geteuid() == 0:
        shutil.chown(scratch.home / "postgres", "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(data / "PG_VERSION", "postgres", "postgres")
        data.chmod(0o700)
    result = scratch.run("up", "postgres")
    assert result.returncode == 1
    assert "✗ postgres: the process exited while starting" in result.stderr
    assert f"log: {scratch.home / 'postgres' / 'postgres.log'}" in result.stderr
    assert "last lines of the log:" in result.stderr
    assert "hack/stack reset postgres" in result.stderr


def test_reset_wipes_the_component(scratch: ScratchStack) -> None:
    assert scratch.run("up", "redis").returncode == 0
    assert scratch.run("reset", "redis").returncode == 0
    assert not (scratch.home / "redis").exists()
    assert scratch.run("reset").returncode == 1
