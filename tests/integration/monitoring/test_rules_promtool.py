"""promtool on manifests/monitoring: the rules load (expressions and annotation templates), the
dashboard's expressions are valid PromQL, and each alert fires on made-up series shaped like the
real ones (the labels the monitors give them) and stays quiet on a healthy fleet.

promtool compares annotations too, so the firing cases run on a copy of the rules without them;
the templates are checked by `promtool check rules` on the rules as shipped."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.fixtures.monitoring import (
    alerting_rules,
    dashboard,
    dashboard_expressions,
    rule_groups,
    rules_object,
    run_promtool,
)

OPERATOR = 'namespace="games", name="stats", job="eventfleet-operator"'
CONSUMER = 'namespace="games", name="stats", mode="stats", pod="stats-consumer-a", job="consumers"'
GATEWAY = 'job="gateway", pod="gateway-a"'
WHO = {"namespace": "games", "name": "stats"}


def test_the_rules_as_shipped_pass_promtool_check(tmp_path: Path) -> None:
    path = tmp_path / "alerts.rules.yaml"
    path.write_text(yaml.safe_dump(rule_groups()))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerting_rules(rules_object()))} rules found" in result.stdout


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    """Each query, with Grafana's variables given values, becomes a recording rule for
    promtool to parse."""
    variables = {"$__rate_interval": "5m", "${datasource}": "", "$namespace": ".*", "$name": ".*"}
    rules = []
    for index, expression in enumerate(dashboard_expressions(dashboard())):
        text = expression.text
        for variable, value in variables.items():
            text = text.replace(variable, value)
        assert "$" not in text, expression.where
        rules.append({"record": f"dashboard:query_{index}", "expr": text})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@dataclass(frozen=True)
class Case:
    alert: str
    series: dict[str, str]  # selector -> promtool values ("0+1x30": 0, 1, ... one a minute)
    fires: list[dict[str, str]]  # each alert's labels besides alertname and severity
    at: str = "30m"
    quiet: dict[str, str] = field(default_factory=dict)  # the same alert does not fire on these


def one_series(
    alert: str,
    series: str,
    fires: str,
    quiet: str,
    *,
    labels: dict[str, str] = WHO,
    at: str = "30m",
) -> Case:
    """An alert on one series: it fires (with `labels`) when the series takes the values
    `fires`, and not when it takes `quiet`."""
    return Case(alert, {series: fires}, [labels], at=at, quiet={series: quiet})


def consumer_series(metric: str, labels: str = "") -> str:
    """A consumer pod's series of eventfleet_consumer_`metric`, labelled as the PodMonitor does."""
    return f"eventfleet_consumer_{metric}{{{CONSUMER}{labels}}}"


def gateway_requests(status: str) -> str:
    """The gateway pod's series of requests to /api/v1/events answered with `status`."""
    return (
        f"eventfleet_gateway_requests_total{{{GATEWAY}, "
        f'endpoint="/api/v1/events", status="{status}"}}'
    )


def gateway_share(alert: str, status: str, fires: str, quiet: str) -> Case:
    """An alert on the share of the gateway's answers with `status` beside the accepted ones
    (6000 a minute): it fires when `fires` a minute get that status, not at `quiet` a minute."""
    answered, accepted = gateway_requests(status), gateway_requests("202")
    return Case(
        alert,
        {answered: f"0+{fires}x30", accepted: "0+6000x30"},
        [{}],
        quiet={answered: f"0+{quiet}x30", accepted: "0+6000x30"},
    )


OPERATOR_READY = f'eventfleet_condition{{{OPERATOR}, condition="Ready"}}'
AUTOSCALER_HEALTHY = f'eventfleet_condition{{{OPERATOR}, condition="AutoscalerHealthy"}}'
LAG_READ_FAILURES = 'eventfleet_operator_lag_read_failures_total{job="eventfleet-operator"}'
ON_THE_OPERATOR = {**WHO, "job": "eventfleet-operator"}
CASES = [
    Case(
        "EventFleetFleetAtCeiling",
        {
            f"eventfleet_desired_replicas{{{OPERATOR}}}": "4x30",
            f"eventfleet_max_replicas{{{OPERATOR}}}": "4x30",
            f"eventfleet_consumer_group_lag{{{OPERATOR}}}": "1000+500x30",
        },
        [ON_THE_OPERATOR],
        quiet={  # room to grow: the autoscaler is still at work
            f"eventfleet_desired_replicas{{{OPERATOR}}}": "3x30",
            f"eventfleet_max_replicas{{{OPERATOR}}}": "4x30",
            f"eventfleet_consumer_group_lag{{{OPERATOR}}}": "1000+500x30",
        },
    ),
    one_series(
        "EventFleetLagUnavailable",
        AUTOSCALER_HEALTHY,
        "0x30",
        "1x30",
        labels={**ON_THE_OPERATOR, "condition": "AutoscalerHealthy"},
    ),
    one_series(
        "EventFleetLagReadsFailing",
        LAG_READ_FAILURES,
        "0+1x30",
        "3x30",
        labels={"job": "eventfleet-operator"},
    ),
    one_series(
        "EventFleetNotReady",
        OPERATOR_READY,
        "0x30",
        "1x30",
        labels={**ON_THE_OPERATOR, "condition": "Ready"},
    ),
    Case(
        "EventFleetReconcileRetries",
        {'eventfleet_operator_reconciles_total{job="op", result="retry"}': "0+1x40"},
        [{"job": "op", "result": "retry"}],
        at="40m",
        quiet={
            'eventfleet_operator_reconciles_total{job="op", result="retry"}': "2x40",
            'eventfleet_operator_reconciles_total{job="op", result="ok"}': "0+5x40",
        },
    ),
    Case(
        "EventFleetDeadLettersHigh",
        {
            consumer_series("dlq_total", ', reason="invalid_json"'): "0+5x30",
            consumer_series("consumed_total"): "0+100x30",
        },
        [WHO],
        quiet={  # 0.5%
            consumer_series("dlq_total", ', reason="invalid_json"'): "0+1x30",
            consumer_series("consumed_total"): "0+200x30",
        },
    ),
    Case(
        "EventFleetInternalErrorDeadLetters",
        {consumer_series("dlq_total", ', reason="internal_error"'): "0x20 1x10"},
        [WHO],
        quiet={consumer_series("dlq_total", ', reason="invalid_json"'): "0+9x30"},
    ),
    one_series(
        "EventFleetConsumerInternalErrors",
        consumer_series("internal_errors_total", ', stage="write"'),
        "0x25 2x5",
        "2x30",
        labels={**WHO, "stage": "write"},
    ),
    one_series(
        "EventFleetTopicRecreated", consumer_series("topic_recreated_total"), "0x25 3x5", "3x30"
    ),
    Case(
        "EventFleetConsumerNotReady",
        {
            consumer_series("ready"): "0x30",
            f"eventfleet_consumer_ready{{{CONSUMER.replace('-a', '-b')}}}": "1x30",
        },
        [{**WHO, "mode": "stats", "pod": "stats-consumer-a", "job": "consumers"}],
        quiet={consumer_series("ready"): "1x30"},
    ),
    one_series(
        "EventFleetDatabaseErrors", consumer_series("database_errors_total"), "0+1x30", "0x10 4x20"
    ),
    one_series(
        "EventFleetRedisErrors", consumer_series("redis_errors_total"), "0+1x40", "5x40", at="40m"
    ),
    one_series(
        "EventFleetRedisLosingKeys",
        consumer_series("redis_rewrites_total"),
        "0+2x70",
        "0x10 50x60",
        at="70m",
    ),
    gateway_share("EventFleetGatewayUnavailable", "503", fires="600", quiet="6"),
    gateway_share("EventFleetGatewayRateLimited", "429", fires="600", quiet="60"),
]


def promtool_tests() -> list[dict[str, object]]:
    severities = {
        rule["alert"]: rule["labels"]["severity"] for rule in alerting_rules(rules_object())
    }
    tests: list[dict[str, object]] = []
    for case in CASES:
        expected = [
            {"exp_labels": {**labels, "severity": severities[case.alert]}} for labels in case.fires
        ]
        for series, alerts in ((case.series, expected), (case.quiet, [])):
            tests.append(
                {
                    "name": f"{case.alert} {'fires' if alerts else 'quiet'}",
                    "interval": "1m",
                    "input_series": [{"series": s, "values": v} for s, v in series.items()],
                    "alert_rule_test": [
                        {"eval_time": case.at, "alertname": case.alert, "exp_alerts": alerts}
                    ],
                }
            )
    return tests


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    assert sorted(c.alert for c in CASES) == sorted(
        r["alert"] for r in alerting_rules(rules_object())
    )
    assert all(c.quiet for c in CASES)


def test_each_alert_fires_on_its_series_and_stays_quiet_otherwise(tmp_path: Path) -> None:
    (tmp_path / "alerts.rules.yaml").write_text(yaml.safe_dump(rule_groups(annotations=False)))
    suite = {
        "rule_files": ["alerts.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": promtool_tests(),
    }
    (tmp_path / "alerts.test.yaml").write_text(yaml.safe_dump(suite))
    result = run_promtool("test", "rules", str(tmp_path / "alerts.test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_alert_makes_promtool_fail(tmp_path: Path) -> None:
    """The check can fail: a rule whose threshold is off by far does not fire where expected."""
    groups = rule_groups(annotations=False)
    for group in groups["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == "EventFleetDeadLettersHigh":
                rule["expr"] = re.sub(r"> 0\.01\s*$", "> 0.5", rule["expr"].rstrip())
    (tmp_path / "alerts.rules.yaml").write_text(yaml.safe_dump(groups))
    suite = {
        "rule_files": ["alerts.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [t for t in promtool_tests() if "EventFleetDeadLettersHigh" in str(t["name"])],
    }
    (tmp_path / "alerts.test.yaml").write_text(yaml.safe_dump(suite))
    result = run_promtool("test", "rules", str(tmp_path / "alerts.test.yaml"))
    assert result.returncode != 0
    assert "EventFleetDeadLettersHigh" in result.stdout + result.stderr
