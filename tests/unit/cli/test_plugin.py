"""`kubectl eventfleet`, the pure parts: what `status` shows from what it read, and what a
report's redaction leaves of a credential."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from eventfleet.cli.plugin.redact import MASK, redact
from eventfleet.cli.plugin.view import DlqRate, Pod, Seen, Unreadable, age, render
from eventfleet.operator.scaling import PartitionOffsets

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def stamp(seconds_ago: int) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


RESOURCE: dict[str, Any] = {
    "metadata": {"name": "stats", "namespace": "gamemetrics", "uid": "u1",
                 "creationTimestamp": stamp(3 * 86_400)},
    "spec": {"mode": "stats", "kafka": {"topic": "player.events"},
             "replicas": {"min": 1, "max": 6}, "autoscaling": {"enabled": True}},
    "status": {
        "phase": "Running", "consumerGroup": "eventfleet.gamemetrics.stats", "schemaVersion": 6,
        "replicas": 2, "readyReplicas": 2, "desiredReplicas": 3,
        "lag": {"total": 4200, "partitions": 3, "partitionsWithLag": 2, "measuredAt": stamp(4)},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Running", "message": "all good",
             "lastTransitionTime": stamp(7200)},
            {"type": "AutoscalerHealthy", "status": "False", "reason": "LagUnavailable",
             "message": "Kafka timed out", "lastTransitionTime": stamp(90)},
        ],
    },
}  # fmt: skip
EVENTS = [
    {"type": "Normal", "reason": "ScaledUp", "message": "2 -> 3: lag 4200", "count": 1,
     "lastTimestamp": stamp(30)},
    {"type": "Normal", "reason": "ScaledDown", "message": "3 -> 2: idle", "count": 1,
     "lastTimestamp": stamp(600)},
    {"type": "Warning", "reason": "TopicChangeRefused", "message": "partitions cannot shrink",
     "count": 12, "lastTimestamp": stamp(5)},
]  # fmt: skip


def seen(**changes: Any) -> Seen:
    values: dict[str, Any] = {
        "resource": RESOURCE,
        "events": EVENTS,
        "pods": [Pod("stats-abc", "Running", "1/1", 2, NOW - timedelta(minutes=5), "node-1")],
        "partitions": [
            PartitionOffsets(0, 0, 100, 100),
            PartitionOffsets(1, 0, 5000, 800),
            PartitionOffsets(2, 10, 20, None),
        ],
        "dlq": DlqRate(last_hour=3, last_day=10, by_reason={"invalid_data": 7, "too_deep": 3}),
    }
    return Seen(**(values | changes))


def test_status_shows_every_section_from_what_was_read() -> None:
    screen = render(seen(), NOW)
    assert screen.startswith("gamemetrics/stats  Running  mode stats  topic player.events\n")
    assert "replicas 2/2 ready, desired 3  (autoscaling 1..6)" in screen
    assert "lag 4200 over 3 partitions, 2 lagging (read 4s ago)" in screen
    assert "age 3d" in screen
    lines = screen.splitlines()
    ready = next(line for line in lines if line.strip().startswith("Ready"))
    assert ready.split()[:4] == ["Ready", "True", "Running", "2h"]
    assert "LagUnavailable" in screen
    assert "Kafka timed out" in screen
    lag_rows = [
        line.split() for line in lines if line.startswith("  ") and line.split()[0] in "012"
    ]
    assert lag_rows == [
        ["0", "100", "100", "0"],
        ["1", "800", "5000", "4200"],
        ["2", "-", "20", "10"],
    ]
    scale = lines.index("Scale decisions (newest first):")
    assert lines[scale + 1] == "  30s ago  ScaledUp: 2 -> 3: lag 4200"
    assert lines[scale + 2] == "  10m ago  ScaledDown: 3 -> 2: idle"
    assert "  5s ago  TopicChangeRefused: partitions cannot shrink (x12)" in lines
    assert (
        "Dead letters: 3 in the last hour, 10 in the last day (invalid_data 7, too_deep 3)" in lines
    )
    pod = next(line for line in lines if "stats-abc" in line).split()
    assert pod == ["stats-abc", "Running", "1/1", "2", "5m", "node-1"]


def test_what_could_not_be_read_is_said_not_fatal() -> None:
    screen = render(
        seen(
            partitions=Unreadable("Kafka: timed out"),
            dlq=Unreadable("PostgreSQL: could not connect"),
            pods=[],
            events=[],
            resource={**RESOURCE, "status": {}, "spec": {**RESOURCE["spec"], "paused": True}},
        ),
        NOW,
    )
    assert "Lag per partition: not readable from here (Kafka: timed out)" in screen
    assert "Dead letters: not readable from here (PostgreSQL: could not connect)" in screen
    assert "Pods: none" in screen
    assert "Conditions: none yet" in screen
    assert "Scale decisions: none yet" in screen
    assert "(paused (hands off))" in screen
    assert "Warnings" not in screen


def test_a_manual_eventconsumer_says_so() -> None:
    spec = {**RESOURCE["spec"], "autoscaling": {"enabled": False}, "replicas": {"count": 4}}
    assert "(manual, 4 replicas)" in render(seen(resource={**RESOURCE, "spec": spec}), NOW)


def test_ages_read_like_kubectls() -> None:
    assert [age(stamp(s), NOW) for s in (0, 59, 60, 3599, 3600, 86_400, -30)] == [
        "0s", "59s", "1m", "59m", "1h", "1d", "0s"
    ]  # fmt: skip
    assert age(None, NOW) == "-"


def test_redaction_keeps_the_shape_and_drops_the_secret() -> None:
    assert redact("postgresql://app:s3cret@db:5432/x") == f"postgresql://app:{MASK}@db:5432/x"
    assert redact("redis://:hunter2@cache:6379/0") == f"redis://:{MASK}@cache:6379/0"
    assert (
        redact("host=db user=app password=s3cret dbname=x")
        == f"host=db user=app password={MASK} dbname=x"
    )
    assert (
        redact('{"sasl.password": "pa\\"ss", "user": "u"}')
        == f'{{"sasl.password": "{MASK}", "user": "u"}}'
    )
    assert redact("api_token: abc123\nname: x") == f"api_token: {MASK}\nname: x"
    jaas = 'sasl.jaas.config=org.Scram required username="u" password="p4ss";'
    assert "p4ss" not in redact(jaas)
    assert (
        redact("no credentials here: postgresql://db/x") == "no credentials here: postgresql://db/x"
    )


secrets = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=8, max_size=24)
users = st.text(st.characters(codec="ascii", categories=["L"]), min_size=1, max_size=8)


@given(users, secrets, st.sampled_from(["postgresql", "redis", "rediss", "postgres"]))
def test_no_url_password_survives(user: str, secret: str, scheme: str) -> None:
    template = 'env: [{"name": "DSN", "value": "SCHEME://USER:{}@db.svc:5432/x"}]'
    template = template.replace("SCHEME", scheme).replace("USER", user)
    assume(secret not in template)  # what is kept must not hold the secret
    text = template.replace("{}", secret)
    assert secret not in redact(text)


@given(secrets, st.sampled_from(["password", "PASSWORD", "sasl.password", "db_passwd", "token",
                                 "clientSecret"]), st.sampled_from(["=", ": ", " = "]))  # fmt: skip
def test_no_secret_pair_survives(secret: str, key: str, separator: str) -> None:
    for text in (
        f"{key}{separator}{secret}",
        f"x {key}{separator}'{secret}' y",
        f'"{key}": "{secret}"',
    ):
        assert secret not in redact(text), text


@given(st.text(max_size=200))
def test_redaction_never_raises_and_is_stable(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
