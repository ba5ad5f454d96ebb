"""manifests/monitoring: the dashboard has the panels an operator of the pipeline reaches for,
the rules are the documented alerts, every expression parses and names documented metrics and
labels, and the monitors scrape the ports the components really expose.

tests/integration/monitoring checks the same names against the components' real /metrics, and
runs promtool on the rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.operator.builders import HTTP_PORT, Owner, build_deployment, consumer_labels
from eventfleet.operator.cli import build_parser as operator_parser
from eventfleet.operator.spec import parse_spec
from tests.fixtures.monitoring import (
    FOLDER,
    HISTOGRAM_SUFFIXES,
    REPO,
    TARGET_LABELS,
    Expression,
    alerting_rules,
    all_expressions,
    dashboard,
    dashboard_expressions,
    panels,
    rules_object,
    used_metrics,
)
from tests.fixtures.promql import names

OPERATIONS = REPO / "docs" / "operations.md"


def documented_metrics() -> dict[str, frozenset[str]]:
    """The metric tables of docs/operations.md: each sample name a metric exposes, with its
    labels (a histogram's series with their suffixes, its buckets with `le`)."""
    found: dict[str, frozenset[str]] = {}
    row = re.compile(r"^\| `(eventfleet_\w+)` \| (counter|gauge|histogram) \| ([^|]*) \|", re.M)
    for name, kind, label_cell in row.findall(OPERATIONS.read_text(encoding="utf-8")):
        labels = frozenset(re.findall(r"`(\w+)`", label_cell))
        if kind == "histogram":
            for suffix in HISTOGRAM_SUFFIXES:
                found[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        else:
            found[name] = labels
    return found


# --------------------------------------------------------------------------- the dashboard


def test_the_dashboard_loads_with_unique_panels_on_its_data_source_variable() -> None:
    board = dashboard()
    assert board["uid"] == "eventfleet"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in panels(board):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert panel.get("description"), panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        box = panel["gridPos"]
        cells = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & taken, panel["title"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        taken |= cells


def expressions_of(title: str) -> list[str]:
    (panel,) = [p for p in panels(dashboard()) if p["title"] == title]
    return [target["expr"] for target in panel["targets"]]


# What issue 19 asks the dashboard to show: panel title -> what its queries must contain.
PER_CONSUMER = 'namespace=~"$namespace", name=~"$name"'
REQUIRED_PANELS = {
    "Consumer-group lag": ["eventfleet_consumer_group_lag{" + PER_CONSUMER],
    "Replicas: desired, ready, ceiling": [
        "eventfleet_desired_replicas{" + PER_CONSUMER,
        "eventfleet_ready_replicas{" + PER_CONSUMER,
    ],
    "Scale events": ["eventfleet_operator_scale_actions_total{" + PER_CONSUMER],
    "Processed events/s": ["rate(eventfleet_consumer_processed_total{" + PER_CONSUMER],
    "Dead letters/s by reason": ["by (namespace, name, reason)", "eventfleet_consumer_dlq_total"],
    "Batch duration p50 / p99": [
        "histogram_quantile(0.5, ",
        "histogram_quantile(0.99, ",
        "eventfleet_consumer_batch_duration_seconds_bucket{" + PER_CONSUMER,
    ],
    "End-to-end latency p50 / p99": [
        "histogram_quantile(0.5, ",
        "histogram_quantile(0.99, ",
        "eventfleet_consumer_end_to_end_latency_seconds_bucket{" + PER_CONSUMER,
    ],
    "Requests/s": ["rate(eventfleet_gateway_requests_total["],
    "Events/s by outcome": ["by (outcome)", "eventfleet_gateway_events_total"],
    "Rejects/s by reason": ["by (reason)", "eventfleet_gateway_rejects_total"],
    "429 and 503 answers/s": ['eventfleet_gateway_requests_total{status=~"429|503"}'],
    "Produce latency p50 / p99": [
        "histogram_quantile(0.99, ",
        "eventfleet_gateway_produce_latency_seconds_bucket",
    ],
    "Reconciles/s by result": ["eventfleet_operator_reconciles_total"],
    "Errors/s by where": ["eventfleet_operator_errors_total"],
    "API reads/s": ["eventfleet_operator_api_reads_total"],
    "Lag read failures/s": ["eventfleet_operator_lag_read_failures_total"],
}


@pytest.mark.parametrize(("title", "needles"), REQUIRED_PANELS.items())
def test_the_dashboard_has_the_panel(title: str, needles: list[str]) -> None:
    text = "\n".join(expressions_of(title))
    for needle in needles:
        assert needle in text, f"{title}: {needle}"


def test_rates_use_grafanas_rate_interval() -> None:
    for expression in dashboard_expressions(dashboard()):
        for window in re.findall(r"\[([^\]]*)\]", expression.text):
            assert window == "$__rate_interval", expression.where


# ------------------------------------------------------------------------------- the rules


def test_the_rules_are_a_prometheus_rule_with_documented_runbooks() -> None:
    rules = rules_object()
    assert (rules["apiVersion"], rules["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", docs(), re.M)}
    for rule in alerting_rules(rules):
        assert re.fullmatch(r"EventFleet[A-Z]\w+", rule["alert"]), rule
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"], rule["alert"]
        assert annotations["description"], rule["alert"]
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"docs/operations.md has no section {rule['alert']}"


def docs() -> str:
    return OPERATIONS.read_text(encoding="utf-8")


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def alert_table() -> dict[str, str]:
    """The docs' table of alerts: name -> what its row says."""
    section = docs().split("### Alerts", 1)[1].split("\n#### ", 1)[0]
    return dict(re.findall(r"^\| `(EventFleet\w+)` \| \w+ \| (.+) \|$", section, re.M))


def test_the_docs_table_lists_every_alert_with_its_severity_and_metrics() -> None:
    table = alert_table()
    rules = {rule["alert"]: rule for rule in alerting_rules(rules_object())}
    assert set(table) == set(rules)
    section = docs().split("### Alerts", 1)[1]
    for name, rule in rules.items():
        assert f"| `{name}` | {rule['labels']['severity']} |" in section
        metrics = names(rule["expr"]).metrics
        # Each row names the metrics of its rule (a condition by its name).
        for metric in metrics - {"eventfleet_condition"}:
            assert metric in table[name], (name, metric)


def test_conditions_alert_on_autoscaler_healthy_and_ready() -> None:
    conditions = [
        rule["expr"]
        for rule in alerting_rules(rules_object())
        if "eventfleet_condition" in rule["expr"]
    ]
    assert any('condition="AutoscalerHealthy"' in e for e in conditions)
    assert any('condition="Ready"' in e for e in conditions)


def test_an_internal_error_dead_letter_alerts() -> None:
    (rule,) = [r for r in alerting_rules(rules_object()) if 'reason="internal_error"' in r["expr"]]
    assert rule["labels"]["severity"] == "critical"
    assert "eventfleet_consumer_dlq_total" in rule["expr"]


# ------------------------------------------------------------------ names in every expression


def expressions() -> Iterator[Expression]:
    yield from all_expressions()


@pytest.mark.parametrize("expression", list(expressions()), ids=lambda e: e.where)
def test_every_name_is_a_documented_metric_and_label(expression: Expression) -> None:
    documented = documented_metrics()
    used = expression.names
    assert used.metrics, expression.where
    for metric in used.metrics:
        assert metric in documented, f"{expression.where}: {metric} is not in docs/operations.md"
    allowed = TARGET_LABELS.union(*(documented[m] for m in used.metrics))
    assert used.labels <= allowed, f"{expression.where}: labels {used.labels - allowed}"


def test_the_docs_tables_are_read() -> None:
    documented = documented_metrics()
    assert len(documented) > 30
    assert documented["eventfleet_consumer_dlq_total"] == {"reason"}
    assert "le" in documented["eventfleet_consumer_batch_duration_seconds_bucket"]


def test_the_dashboard_and_the_rules_use_the_metrics_of_every_component() -> None:
    used = used_metrics()
    for prefix in ("eventfleet_consumer_", "eventfleet_gateway_", "eventfleet_operator_"):
        assert any(name.startswith(prefix) for name in used), prefix


# ------------------------------------------------------------------ kustomize and scraping


def load(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((FOLDER / name).read_text(encoding="utf-8")) if d]


def test_monitoring_is_opt_in_and_every_file_is_in_its_kustomization() -> None:
    (kustomization,) = load("kustomization.yaml")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in FOLDER.glob("*.yaml")} - {"kustomization.yaml"}
    (generator,) = kustomization["configMapGenerator"]
    assert generator["files"] == ["eventfleet-dashboard.json"]
    assert generator["options"]["labels"]["grafana_dashboard"] == "1"
    root = yaml.safe_load((REPO / "manifests" / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "monitoring" not in root["resources"]  # the main manifests need no Prometheus CRDs


def monitor(kind: str, name: str) -> dict[str, Any]:
    for name_of_file in ("podmonitors.yaml", "servicemonitor.yaml"):
        for document in load(name_of_file):
            if (document["kind"], document["metadata"]["name"]) == (kind, name):
                return document
    raise AssertionError(f"no {kind} {name}")


def manifest(path: str) -> list[dict[str, Any]]:
    text = (REPO / "manifests" / path).read_text(encoding="utf-8")
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_operator_pod_monitor_scrapes_its_metrics_port_and_keeps_its_labels() -> None:
    found = monitor("PodMonitor", "eventfleet-operator")
    (deployment,) = manifest("operator/deployment.yaml")
    template = deployment["spec"]["template"]
    assert (
        found["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    )
    (endpoint,) = found["spec"]["podMetricsEndpoints"]
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert endpoint["port"] in ports
    assert str(ports[endpoint["port"]]) == template["metadata"]["annotations"]["prometheus.io/port"]
    # The Deployment's args leave --metrics-port at its default: the port it declares.
    args = operator_parser().parse_args(container["args"][1:])
    assert args.metrics_port == ports[endpoint["port"]]
    assert args.bind == "0.0.0.0"  # noqa: S104 - reachable from Prometheus
    assert endpoint["honorLabels"] is True  # the per-EventConsumer namespace and name


def test_the_consumer_pod_monitor_matches_the_pods_the_operator_builds() -> None:
    found = monitor("PodMonitor", "eventfleet-consumers")
    spec = parse_spec(
        {
            "mode": "stats",
            "kafka": {"bootstrapServers": "kafka:9092"},
            "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
            "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
        }
    )
    owner = Owner("stats", "games", "uid-1")
    built = build_deployment(owner, spec, replicas=1, image="eventfleet:test", group="g")
    pod = built["spec"]["template"]
    assert found["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert found["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = found["spec"]["podMetricsEndpoints"]
    (container,) = pod["spec"]["containers"]
    assert {"name": endpoint["port"], "containerPort": HTTP_PORT, "protocol": "TCP"} in container[
        "ports"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EVENTFLEET_HTTP_PORT"] == str(HTTP_PORT)
    assert ConsumerSettings.model_fields["http_host"].default == "0.0.0.0"  # noqa: S104
    copied = {
        r["targetLabel"]: r["sourceLabels"][0].removeprefix("__meta_kubernetes_pod_label_")
        for r in endpoint["relabelings"]
    }
    labels = {
        re.sub(r"[^a-zA-Z0-9_]", "_", key): value
        for key, value in consumer_labels(owner, "stats").items()
    }
    assert labels[copied["name"]] == "stats"  # the EventConsumer's name
    assert labels[copied["mode"]] == "stats"  # its mode (here the same word)
    other = consumer_labels(Owner("scores", "games", "uid-2"), "leaderboard")
    assert {re.sub(r"\W", "_", k): v for k, v in other.items()}[copied["mode"]] == "leaderboard"


def test_the_gateway_service_monitor_scrapes_the_service_port() -> None:
    found = monitor("ServiceMonitor", "eventfleet-gateway")
    (service,) = manifest("gateway/service.yaml")
    (endpoint,) = found["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["honorLabels"] is True  # the requests' own `endpoint` label
    assert found["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
