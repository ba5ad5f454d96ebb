"""Consumer configuration: flags override environment variables (EVENTFLEET_<NAME>), which
override defaults. Everything is validated at start; a bad value names the setting, its flag and
its variable. Pure: reads only the mapping it is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eventfleet.contract.events import DEFAULT_MAX_EVENT_BYTES
from eventfleet.contract.names import (
    BOARDS,
    DEFAULT_TOPIC,
    PERIODS,
    TOPIC_PATTERN,
    Board,
    LogLevel,
    Mode,
    Period,
)

ENV_PREFIX: Final = "EVENTFLEET_"
RedisDb = Annotated[int, Field(ge=0, le=15)]


class SettingsError(Exception):
    """A setting has a bad value; the message names it."""


class ConsumerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode
    kafka_bootstrap: Annotated[str, Field(min_length=1)]
    # The Kafka credentials: a directory in the binding format (a mounted Secret, one file per
    # key) or a JSON file; see eventfleet.contract.kafka_binding. Unset: PLAINTEXT.
    kafka_auth_path: Path | None = None
    topic: Annotated[str, Field(pattern=TOPIC_PATTERN)] = DEFAULT_TOPIC
    consumer_group: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    postgres_dsn: Annotated[str, Field(min_length=1)]
    redis_url: str | None = None
    redis_stats_db: RedisDb = 0
    redis_leaderboard_db: RedisDb = 1
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    batch_timeout_ms: Annotated[int, Field(ge=1, le=60_000)] = 100
    dlq_topic: Annotated[str, Field(pattern=TOPIC_PATTERN)] | None = None
    max_event_bytes: Annotated[int, Field(ge=256, le=16 * 1024 * 1024)] = DEFAULT_MAX_EVENT_BYTES
    max_future_skew_seconds: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    # logger: days of events kept (0 keeps everything); partitions are created this far ahead.
    retention_days: Annotated[int, Field(ge=0, le=36_500)] = 30
    partitions_ahead_days: Annotated[int, Field(ge=1, le=60)] = 3
    # leaderboard
    boards: tuple[Board, ...] = BOARDS
    periods: tuple[Period, ...] = PERIODS
    top_n: Annotated[int, Field(ge=1, le=100_000)] = 100
    daily_keep_days: Annotated[int, Field(ge=1, le=3650)] = 7
    weekly_keep_weeks: Annotated[int, Field(ge=1, le=520)] = 5
    # stats, leaderboard: an event_id counted within this many hours is not counted again. The
    # default, 7 days, is Kafka's default retention: no replay of the topic reaches further back.
    dedup_window_hours: Annotated[int, Field(ge=1, le=8760)] = 168
    # Dead letters (dlq_events) older than this many days are deleted by maintenance. The table
    # is shared by every mode writing to the database: the shortest retention among them wins.
    dlq_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # Who writes this mode's tables (the operator passes namespace/name of the EventConsumer):
    # a consumer whose owner is not the sink's recorded owner waits instead of writing. None:
    # no claim is made or checked (a consumer run by hand).
    sink_owner: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    # operability
    http_host: str = "0.0.0.0"  # noqa: S104 - a pod's probes and Prometheus come from outside
    http_port: Annotated[int, Field(ge=0, le=65_535)] = 8080  # 0: no HTTP server
    log_level: LogLevel = "INFO"
    max_backoff_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0
    # Every PostgreSQL wait is bounded, well inside liveness's window (observability's
    # HEARTBEAT_STALE_SECONDS): a lock held by a session that will never finish (an owner cut
    # off mid-transaction) fails the statement, which is retried with a log line naming the
    # holder, instead of blocking the loop until the pod is killed (issue 15).
    postgres_lock_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 5.0
    postgres_statement_timeout_seconds: Annotated[float, Field(gt=0, le=45)] = 30.0
    # The server ends a session idle inside a transaction this long: a partitioned-away owner's
    # locks go after this, not after the hours TCP takes to notice.
    postgres_idle_in_transaction_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    maintenance_interval_seconds: Annotated[float, Field(gt=0, le=86_400)] = 600.0

    @model_validator(mode="after")
    def _redis_for_modes_that_use_it(self) -> ConsumerSettings:
        if self.mode != "logger" and not self.redis_url:
            raise ValueError(f"redis_url is required in mode {self.mode}")
        if not self.boards or not self.periods:
            raise ValueError("boards and periods may not be empty")
        return self

    @property
    def group(self) -> str:
        return self.consumer_group or f"event-consumer-{self.mode}"

    @property
    def redis_db(self) -> int:
        return self.redis_stats_db if self.mode == "stats" else self.redis_leaderboard_db


FIELDS: Final = tuple(ConsumerSettings.model_fields)
_LISTS: Final = ("boards", "periods")
_SECRETS: Final = ("postgres_dsn", "redis_url", "kafka_bootstrap")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventfleet consumer",
        description=(
            "Consume player events from Kafka into PostgreSQL (and Redis) in one mode, exactly "
            f"once. Every flag can also be set as an environment variable {ENV_PREFIX}<NAME>."
        ),
    )
    for name, info in ConsumerSettings.model_fields.items():
        default = "required" if info.is_required() else f"default {info.default!r}"
        text = f"env {env_name(name)}; {default}"
        if name in _LISTS:
            text += "; comma-separated"
        parser.add_argument(flag(name), dest=name, default=None, help=text)
    return parser


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> ConsumerSettings:
    """Settings from flags and environment; raises SettingsError naming the bad setting."""
    flags = vars(build_parser().parse_args(list(argv)))
    raw: dict[str, Any] = {}
    for name in FIELDS:
        value = flags.get(name)
        if value is None:
            value = environ.get(env_name(name))
        if value is None or value == "":
            continue
        raw[name] = (
            tuple(v.strip() for v in value.split(",") if v.strip()) if name in _LISTS else value
        )
    try:
        return ConsumerSettings.model_validate(raw, strict=False)
    except ValidationError as error:
        raise SettingsError(describe(error)) from error


def describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False):
        name = str(item["loc"][0]) if item["loc"] else ""
        message = item["msg"].removeprefix("Value error, ")
        if name in FIELDS:
            where = f"{name} ({flag(name)} / {env_name(name)})"
            if item["type"] == "missing":
                lines.append(f"missing setting {where}: it is required")
            elif name in _SECRETS:  # a DSN or URL may carry a password: never echo it
                lines.append(f"invalid setting {where}: {message}")
            else:
                lines.append(f"invalid setting {where}: {message} (got {item.get('input')!r})")
        else:
            lines.append(f"invalid settings: {message}")
    return "; ".join(lines)
