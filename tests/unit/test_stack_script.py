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


def test_a_child_is_stopped_politely_or_killed_once_its_grace_is_over() -> None:
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    processes.stop_child(polite, grace_seconds=5)
    assert polite.returncode == -15  # SIGTERM was enough
    deaf = "import signal as s, time; s.signal(s.SIGTERM, s.SIG_IGN); print(1); time.sleep(30)"
    stubborn = subprocess.Popen([sys.executable, "-u", "-c", deaf], stdout=subprocess.PIPE)
    try:
        assert stubborn.stdout is not None
        stubborn.stdout.readline()  # SIGTERM is ignored from here on
        processes.stop_child(stubborn, grace_seconds=0.5)
        assert stubborn.returncode == -9
        processes.stop_child(stubborn)  # an exited child: nothing to do
    finally:
        stubborn.kill()
        stubborn.wait()


def test_the_node_controllers_are_a_controller_manager_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kubernetes = hack_module("fleetstack.kubernetes")
    node = hack_module("fleetstack.node")
    for module in (kubernetes, node):
        monkeypatch.setattr(module, "kube_bin_dir", lambda: Path("/k8s/bin"))
    first = kubernetes.KubeControllerManager().command()
    second = node.NodeControllers().command()
    assert first[0] == second[0] == "/k8s/bin/kube-controller-manager"
    assert "--controllers=garbage-collector-controller," in first[2]
    assert "--controllers=deployment-controller," in second[2]
    # Only the first one runs the token controller, which signs with the service-account key.
    assert [f for f in first if f.startswith("--service-account-private-key-file=")]
    assert not [f for f in second if f.startswith("--service-account-private-key-file=")]
    assert node.NodeControllers().ports() != kubernetes.KubeControllerManager().ports()


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


NODE = ["pod-network", "containerd", "kubelet", "kube-scheduler", "node-controllers"]


def test_the_node_starts_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTFLEET_NODE", raising=False)
    names = [c.name for c in cli.select([])]
    assert names[:3] == ["postgres", "redis", "kafka"]
    assert not set(NODE) & set(names)
    monkeypatch.setenv("EVENTFLEET_NODE", "1")
    assert [c.name for c in cli.select([])][-5:] == NODE
    monkeypatch.delenv("EVENTFLEET_NODE")
    # `node` names all of its components, in start order; `all` includes them.
    assert [c.name for c in cli.select(["node"])] == NODE
    assert [c.name for c in cli.select(["kubelet", "postgres"])] == ["postgres", "kubelet"]
    assert set(NODE) <= {c.name for c in cli.select(["all"])}


@pytest.mark.parametrize(
    ("variable", "raw", "problem"),
    [
        ("EVENTFLEET_NODE_SUBNET", "8.8.8.0/24", "must be a private /28 or larger"),
        ("EVENTFLEET_NODE_SUBNET", "10.88.0.0/30", "must be a private /28 or larger"),
        ("EVENTFLEET_NODE_SUBNET", "banana", "EVENTFLEET_NODE_SUBNET='banana'"),
        ("EVENTFLEET_NODE_BRIDGE", "a-name-far-too-long", "is not a device name"),
    ],
)
def test_bad_node_network_settings_are_refused(
    variable: str, raw: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = hack_module("fleetstack.node_network")
    monkeypatch.setenv(variable, raw)
    with pytest.raises(common.StackError) as caught:
        network.bridge_name() if variable.endswith("BRIDGE") else network.node_address()
    assert problem in str(caught.value)


def test_the_gateway_of_the_pod_subnet_is_the_first_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    network = hack_module("fleetstack.node_network")
    monkeypatch.setenv("EVENTFLEET_NODE_SUBNET", "10.77.5.0/24")
    assert network.node_address() == "10.77.5.1"


def test_forward_routes_are_parsed_and_bad_ones_refused() -> None:
    forward = hack_module("fleetstack.forward")
    assert forward.parse_route("10.88.0.1:25432=127.0.0.1:25432") == (
        ("10.88.0.1", 25432),
        ("127.0.0.1", 25432),
    )
    for bad in ("10.88.0.1:x=127.0.0.1:1", "10.88.0.1=127.0.0.1:1", "nonsense"):
        with pytest.raises(SystemExit):
            forward.parse_route(bad)


def test_the_image_tag_follows_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = hack_module("fleetstack.images")
    (tmp_path / "Dockerfile").write_text("FROM ${BASE}\n")
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "a.py").write_text("one")
    (tmp_path / "cli" / "__pycache__").mkdir()
    (tmp_path / "cli" / "__pycache__" / "a.pyc").write_text("cache")
    monkeypatch.setattr(images, "REPO", tmp_path)
    first = images.image_tag()
    assert first.startswith("localhost/eventfleet:")
    (tmp_path / "cli" / "__pycache__" / "a.pyc").write_text("other cache")
    assert images.image_tag() == first  # byte-code caches are not sources
    (tmp_path / "cli" / "a.py").write_text("two")
    assert images.image_tag() != first


def test_a_loopback_url_is_reached_from_a_pod_at_the_bridge_address_on_the_same_port() -> None:
    deploy = hack_module("fleetstack.deploy")
    dsn = "postgresql://eventfleet:eventfleet@127.0.0.1:25432/gamemetrics"
    assert deploy.from_pod(dsn, "10.88.0.1") == (
        "postgresql://eventfleet:eventfleet@10.88.0.1:25432/gamemetrics"
    )
    assert deploy.from_pod("redis://127.0.0.1:26379/0", "10.88.0.1") == "redis://10.88.0.1:26379/0"
