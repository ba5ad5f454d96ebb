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


CASES = [
    Case(
        "EventFleetFleetAtCeiling",
        {
            f"eventfleet_desired_replicas{{{OPERATOR}}}": "4x30",
            f"eventfleet_max_replicas{{{OPERATOR}}}": "4x30",
            f"eventfleet_consumer_group_lag{{{OPERATOR}}}": "1000+500x30",
        },
        [{**WHO, "job": "eventfleet-operator"}],
        quiet={  # room to grow: the autoscaler is still at work
            f"eventfleet_desired_replicas{{{OPERATOR}}}": "3x30",
            f"eventfleet_max_replicas{{{OPERATOR}}}": "4x30",
            f"eventfleet_consumer_group_lag{{{OPERATOR}}}": "1000+500x30",
        },
    ),
    Case(
        "EventFleetLagUnavailable",
        {f'eventfleet_condition{{{OPERATOR}, condition="AutoscalerHealthy"}}': "0x30"},
        [{**WHO, "job": "eventfleet-operator", "condition": "AutoscalerHealthy"}],
        quiet={f'eventfleet_condition{{{OPERATOR}, condition="AutoscalerHealthy"}}': "1x30"},
    ),
    Case(
        "EventFleetLagReadsFailing",
        {'eventfleet_operator_lag_read_failures_total{job="eventfleet-operator"}': "0+1x30"},
        [{"job": "eventfleet-operator"}],
        quiet={'eventfleet_operator_lag_read_failures_total{job="eventfleet-operator"}': "3x30"},
    ),
    Case(
        "EventFleetNotReady",
        {f'eventfleet_condition{{{OPERATOR}, condition="Ready"}}': "0x30"},
        [{**WHO, "job": "eventfleet-operator", "condition": "Ready"}],
        quiet={f'eventfleet_condition{{{OPERATOR}, condition="Ready"}}': "1x30"},
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
            f'eventfleet_consumer_dlq_total{{{CONSUMER}, reason="invalid_json"}}': "0+5x30",
            f"eventfleet_consumer_consumed_total{{{CONSUMER}}}": "0+100x30",
        },
        [WHO],
        quiet={  # 0.5%
            f'eventfleet_consumer_dlq_total{{{CONSUMER}, reason="invalid_json"}}': "0+1x30",
            f"eventfleet_consumer_consumed_total{{{CONSUMER}}}": "0+200x30",
        },
    ),
    Case(
        "EventFleetInternalErrorDeadLetters",
        {f'eventfleet_consumer_dlq_total{{{CONSUMER}, reason="internal_error"}}': "0x20 1x10"},
        [WHO],
        quiet={f'eventfleet_consumer_dlq_total{{{CONSUMER}, reason="invalid_json"}}': "0+9x30"},
    ),
    Case(
        "EventFleetConsumerInternalErrors",
        {f'eventfleet_consumer_internal_errors_total{{{CONSUMER}, stage="write"}}': "0x25 2x5"},
        [{**WHO, "stage": "write"}],
        quiet={f'eventfleet_consumer_internal_errors_total{{{CONSUMER}, stage="write"}}': "2x30"},
    ),
    Case(
        "EventFleetTopicRecreated",
        {f"eventfleet_consumer_topic_recreated_total{{{CONSUMER}}}": "0x25 3x5"},
        [WHO],
        quiet={f"eventfleet_consumer_topic_recreated_total{{{CONSUMER}}}": "3x30"},
    ),
    Case(
        "EventFleetConsumerNotReady",
        {
            f"eventfleet_consumer_ready{{{CONSUMER}}}": "0x30",
            f"eventfleet_consumer_ready{{{CONSUMER.replace('-a', '-b')}}}": "1x30",
        },
        [{**WHO, "mode": "stats", "pod": "stats-consumer-a", "job": "consumers"}],
        quiet={f"eventfleet_consumer_ready{{{CONSUMER}}}": "1x30"},
    ),
    Case(
        "EventFleetDatabaseErrors",
        {f"eventfleet_consumer_database_errors_total{{{CONSUMER}}}": "0+1x30"},
        [WHO],
        quiet={f"eventfleet_consumer_database_errors_total{{{CONSUMER}}}": "0x10 4x20"},
    ),
    Case(
        "EventFleetRedisErrors",
        {f"eventfleet_consumer_redis_errors_total{{{CONSUMER}}}": "0+1x40"},
        [WHO],
        at="40m",
        quiet={f"eventfleet_consumer_redis_errors_total{{{CONSUMER}}}": "5x40"},
    ),
    Case(
        "EventFleetRedisLosingKeys",
        {f"eventfleet_consumer_redis_rewrites_total{{{CONSUMER}}}": "0+2x70"},
        [WHO],
        at="70m",
        quiet={f"eventfleet_consumer_redis_rewrites_total{{{CONSUMER}}}": "0x10 50x60"},
    ),
    Case(
        "EventFleetGatewayUnavailable",
        {
            f'eventfleet_gateway_requests_total{{{GATEWAY}, endpoint="/api/v1/events", status="503"}}': "0+600x30",  # noqa: E501
            f'eventfleet_gateway_requests_total{{{GATEWAY}, endpoint="/api/v1/events", status="202"}}': "0+6000x30",  # noqa: E501
        },
        [{}],
        quiet={
            f'eventfleet_gateway_requests_total{{{GATEWAY}, endpoint="/api/v1/events", status="503"}}': "0+6x30",  # noqa: E501
            f'eventfleet_gateway_requests_total{{{GATEWAY}, endpoint="/api/v1/events", status="202"}}': "0+6000x30",  # noqa: E501
        },
    ),
    Case(
        "EventFleetGatewayRateLimited",
        {
            f'eventfleet_gateway_requests_total{{{GATEWAY}, endpoint="/api/v1/events", status="429"}}': "0+600x30",  # noqa: E501
            f'eventfleet_gateway_requests_total{{{GATEWAY}, endpoint="/api/v1/events", status="202"}}': "0+6000x30",  # noqa: E501
        },
        [{}],
        quiet={
            f'eventfleet_gateway_requests_total{{{GATEWAY}, endpoint="/api/v1/events", status="429"}}': "0+60x30",  # noqa: E501
            f'eventfleet_gateway_requests_total{{{GATEWAY}, endpoint="/api/v1/events", status="202"}}': "0+6000x30",  # noqa: E501
        },
    ),
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
