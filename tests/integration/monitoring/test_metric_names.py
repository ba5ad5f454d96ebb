"""Every metric the dashboard and the alert rules use is one the components really export: the
/metrics of a running operator (with an EventConsumer to report on), a consumer that has stored
events and a dead letter, and a gateway that has taken an event and refused one, each started
the way the other integration tests start them. promtool lints each exposition too."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.monitoring import TARGET_LABELS, all_expressions, run_promtool
from tests.fixtures.net import free_port
from tests.fixtures.operator import Process
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.helpers import produce, settings_for, spawn
from tests.integration.gateway.harness import running_gateway
from tests.integration.operator.cluster import Cluster, body

SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


@dataclass(frozen=True)
class Exposition:
    component: str
    text: str

    def names(self) -> dict[str, set[str]]:
        """Each series name the exposition declares, with the label names its samples carry (a
        family without samples yet, such as a labelled counter never incremented, is declared by
        its TYPE line: its series names follow from its type)."""
        found: dict[str, set[str]] = {}
        for family in text_string_to_metric_families(self.text):
            for suffix in SUFFIXES.get(family.type, ("",)):
                found.setdefault(family.name + suffix, set())
            for sample in family.samples:
                found.setdefault(sample.name, set()).update(sample.labels)
        return found


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
        return str(answer.read().decode())


@pytest.fixture
def operator_exposition(
    operator: Process, kube_api: client.ApiClient, namespace: str, postgres_dsn: str, stack: Stack
) -> Iterator[tuple[Exposition, str]]:
    """The operator's /metrics once it reports on an EventConsumer of this test (its topic's
    name comes along: the consumer and the gateway use it)."""
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="db"),
            data={"dsn": base64.b64encode(postgres_dsn.encode()).decode()},
        ),
    )
    topic = f"test.monitoring.{namespace}"
    cluster = Cluster(kube_api, namespace)
    cluster.create(body(namespace, "monitored", stack, topic))
    cluster.wait_condition("monitored", "TopicReady", "True", timeout=60)
    assert operator.metrics_url is not None
    ours = f'name="monitored",namespace="{namespace}"'
    text = wait_for(
        lambda: (
            (found := scrape(str(operator.metrics_url)))
            and f"eventfleet_max_replicas{{{ours}}}" in found
            and f'eventfleet_condition{{condition="Ready",{ours}}}' in found
            and found
        ),
        timeout=60,
        what="the operator's series of the EventConsumer",
    )
    yield Exposition("operator", text), topic
    cluster.delete("monitored")


@pytest.fixture
def consumer_exposition(
    operator_exposition: tuple[Exposition, str],
    stack: Stack,
    postgres_dsn: str,
    consumer_group: str,
    tmp_path: Path,
) -> Iterator[Exposition]:
    """A stats consumer (not the EventConsumer's logger sink) that stored three events and set
    one record aside, as `eventfleet consumer` in its own process."""
    _, topic = operator_exposition
    port = free_port()
    settings = settings_for(
        "stats",
        bootstrap=stack.kafka_bootstrap,
        topic=topic,
        group=consumer_group,
        dsn=postgres_dsn,
        redis_url=stack.redis_url,
        http_port=port,
        http_host="127.0.0.1",
    )
    process = spawn(settings, log=tmp_path / "consumer.log")
    try:
        now = datetime.now(UTC).isoformat()
        events = [
            {"event_type": "player_login", "player_id": f"p{i}", "game_id": "g", "timestamp": now}
            for i in range(3)
        ]
        produce(
            stack.kafka_bootstrap,
            topic,
            [json.dumps(e).encode() for e in events] + [b"{not json"],
            ["p0", "p1", "p2", "p3"],
        )
        url = f"http://127.0.0.1:{port}/metrics"

        def stored() -> str | None:
            if process.poll() is not None:
                log = (tmp_path / "consumer.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"the consumer exited:\n{log}")
            try:
                text = scrape(url)
            except OSError:
                return None
            done = "eventfleet_consumer_processed_total 3.0" in text
            return text if done and 'reason="invalid_json"' in text else None

        yield Exposition("consumer", wait_for(stored, timeout=90, what="3 events and 1 DLQ"))
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def gateway_exposition(
    operator_exposition: tuple[Exposition, str], stack: Stack, tmp_path: Path
) -> Exposition:
    _, topic = operator_exposition
    with running_gateway(tmp_path, stack.kafka_bootstrap, topic) as gateway:
        event = {
            "event_type": "player_login",
            "player_id": "p1",
            "game_id": "g",
            "timestamp": datetime.now(UTC).isoformat(),
        }
        assert gateway.post("/api/v1/events", event).status == 202
        assert gateway.post("/api/v1/events", {**event, "player_id": 7}).status == 400

        def counted() -> str | None:
            # Another worker than the one that answered may serve /metrics: its counts are
            # at most a second old.
            text = gateway.request("GET", "/metrics").body.decode()
            done = 'eventfleet_gateway_events_total{outcome="accepted"} 1.0' in text
            return text if done and "eventfleet_gateway_rejects_total{" in text else None

        return Exposition("gateway", wait_for(counted, timeout=15, what="the gateway's counts"))


@pytest.fixture
def expositions(
    operator_exposition: tuple[Exposition, str],
    consumer_exposition: Exposition,
    gateway_exposition: Exposition,
) -> list[Exposition]:
    return [operator_exposition[0], consumer_exposition, gateway_exposition]


def test_every_metric_used_is_exported_by_a_component(expositions: list[Exposition]) -> None:
    exported: dict[str, set[str]] = {}
    for exposition in expositions:
        for name, labels in exposition.names().items():
            exported.setdefault(name, set()).update(labels)
    assert "eventfleet_consumer_dlq_total" in exported
    missing = {
        f"{metric} ({expression.where})"
        for expression in all_expressions()
        for metric in expression.names.metrics
        if metric not in exported
    }
    assert not missing, f"not exported by the operator, the consumer or the gateway: {missing}"
    # Labels, where the series have samples: the component's own, or the scrape's.
    for expression in all_expressions():
        used = expression.names
        seen = [exported[m] for m in used.metrics if exported[m]]
        if len(seen) == len(used.metrics):
            allowed = TARGET_LABELS.union(*seen)
            assert used.labels <= allowed, f"{expression.where}: {used.labels - allowed}"


def test_promtool_finds_nothing_to_lint_in_any_exposition(expositions: list[Exposition]) -> None:
    for exposition in expositions:
        result = run_promtool("check", "metrics", stdin=exposition.text)
        assert result.returncode == 0, f"{exposition.component}: {result.stdout}{result.stderr}"
