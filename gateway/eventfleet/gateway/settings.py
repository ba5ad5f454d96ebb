"""The gateway's settings: flags and EVENTFLEET_GATEWAY_* variables, validated before serving.

Pure: the environment is passed in. A bad value names its flag and variable, so the process exits
at start with a message instead of failing on the first request.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eventfleet.contract.kafka_binding import BindingError, KafkaBinding, load_binding
from eventfleet.contract.names import DEFAULT_TOPIC, TOPIC_PATTERN

ENV_PREFIX: Final = "EVENTFLEET_GATEWAY_"
# Workers read their settings from here: the CLI validates once and hands the result down.
SETTINGS_JSON_ENV: Final = "EVENTFLEET_GATEWAY_SETTINGS_JSON"

AckMode = Literal["ack", "fire-and-forget"]


class SettingsError(ValueError):
    """A setting with a bad value; the message names the flag and the variable."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "0.0.0.0"  # noqa: S104 - a server in a container listens on every interface
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    kafka_bootstrap: Annotated[str, Field(min_length=1)] = "127.0.0.1:9092"
    topic: Annotated[str, Field(pattern=TOPIC_PATTERN)] = DEFAULT_TOPIC
    # `ack`: 202 only after Kafka acknowledged every event of the request (acks=all, idempotent).
    # `fire-and-forget`: 202 once the events are in the producer's queue; delivery failures are
    # only counted in metrics and logged. Faster, but a crash can lose queued events.
    ack_mode: AckMode = "ack"
    # How long the producer may try to deliver an event before the request answers 503.
    delivery_timeout_ms: Annotated[int, Field(ge=100, le=300_000)] = 5000
    # While the oldest request of a worker has waited this long for Kafka's acknowledgement,
    # new requests are answered 503 at once (Kafka is behind: queueing them would only make them
    # wait seconds). Requests already queued still wait up to delivery_timeout_ms.
    max_queue_wait_ms: Annotated[int, Field(ge=10, le=300_000)] = 500
    # Each request waits for its ack, so a client's throughput is about connections / latency:
    # 2 ms instead of librdkafka's 5 took 64 connections from ~6,300 to ~8,300 req/s here.
    linger_ms: Annotated[float, Field(ge=0, le=1000)] = 2
    queue_max_messages: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000
    max_event_bytes: Annotated[int, Field(ge=256, le=1_048_576)] = 64 * 1024
    max_batch_events: Annotated[int, Field(ge=1, le=10_000)] = 500
    max_batch_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    # Token bucket per API key (or client IP without keys); 0 turns rate limiting off. For the
    # whole process: each of the `workers` keeps its own buckets with 1/workers of the rate and
    # burst (see ratelimit.py for why, and for the one-connection caveat).
    rate_limit_per_second: Annotated[float, Field(ge=0)] = 0
    rate_limit_burst: Annotated[int, Field(ge=1)] = 100
    rate_limit_max_clients: Annotated[int, Field(ge=1)] = 100_000
    # API keys: none configured = open gateway; otherwise every POST needs one.
    api_keys: tuple[str, ...] = ()
    api_keys_file: Path | None = None
    retry_after_seconds: Annotated[int, Field(ge=1, le=3600)] = 1
    # Most requests a worker serves at once; more wait in the listen backlog.
    backpressure: Annotated[int, Field(ge=1, le=100_000)] = 1024
    shutdown_flush_seconds: Annotated[float, Field(ge=0, le=600)] = 10
    kafka_config: dict[str, str] = Field(default_factory=dict)
    # Kafka credentials in the binding format (eventfleet.contract.kafka_binding): a directory of
    # one file per key (a mounted Secret) or a JSON object. Its bootstrap.servers, if any, is
    # the gateway's unless --kafka-bootstrap names other brokers (refused as ambiguous).
    kafka_auth: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not key.strip() for key in value):
            raise ValueError("an API key may not be blank")
        return value

    @field_validator("api_keys_file")
    @classmethod
    def _file_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    def all_api_keys(self) -> frozenset[str]:
        keys = set(self.api_keys)
        if self.api_keys_file is not None:
            keys.update(read_api_keys(self.api_keys_file.read_text(encoding="utf-8")))
        return frozenset(keys)


def read_api_keys(text: str) -> list[str]:
    """One key a line; blank lines and `#` comments are ignored."""
    keys = []
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if stripped:
            keys.append(stripped)
    return keys


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _env_value(field: str, raw: str) -> Any:
    # Lists in one variable are comma-separated; everything else is validated by the model.
    if field == "api_keys":
        return tuple(key.strip() for key in raw.split(",") if key.strip())
    if field == "kafka_config":
        return _kafka_config_pairs(raw.split(","))
    return raw


def _kafka_config_pairs(pairs: Sequence[str]) -> dict[str, str]:
    config = {}
    for pair in pairs:
        if not pair.strip():
            continue
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"kafka_config: {pair!r} is not NAME=VALUE")
        config[name.strip()] = value.strip()
    return config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventfleet gateway",
        description=(
            "The HTTP ingestion gateway: POST /api/v1/events into Kafka. Every flag can also be "
            f"set as {ENV_PREFIX}<NAME> (flags win)."
        ),
    )
    for name, info in Settings.model_fields.items():
        help_text = (
            f"(env {env_name(name)}; default {info.get_default(call_default_factory=True)!r})"
        )
        if name == "api_keys":
            parser.add_argument(
                flag_name(name), dest=name, action="append", metavar="KEY", help=help_text
            )
        elif name == "kafka_config":
            parser.add_argument(
                flag_name(name),
                dest=name,
                action="append",
                metavar="NAME=VALUE",
                help="extra librdkafka producer setting, repeatable " + help_text,
            )
        else:
            parser.add_argument(flag_name(name), dest=name, metavar="VALUE", help=help_text)
    return parser


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Flags over environment over defaults; SettingsError names the bad setting."""
    parsed = vars(build_parser().parse_args(list(argv)))
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for field in Settings.model_fields:
        variable = env_name(field)
        if environ.get(variable, "") != "":
            values[field] = _env_value(field, environ[variable])
            origin[field] = variable
        flag = parsed.get(field)
        if flag is not None:
            if field == "api_keys":
                values[field] = tuple(flag)
            elif field == "kafka_config":
                values[field] = _kafka_config_pairs(flag)
            else:
                values[field] = flag
            origin[field] = flag_name(field)
    try:
        settings = Settings.model_validate(values)
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False):
            field = str(item["loc"][0]) if item["loc"] else "?"
            source = origin.get(field, f"{flag_name(field)} / {env_name(field)}")
            problems.append(f"{source}: {item['msg']} (got {item.get('input')!r})")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from error
    return with_kafka_auth(settings, origin.get("kafka_bootstrap"))


def with_kafka_auth(settings: Settings, bootstrap_origin: str | None) -> Settings:
    """`settings` with the binding's bootstrap servers, once the binding is known to be usable;
    SettingsError names the file and the key otherwise."""
    if settings.kafka_auth is None:
        return settings
    binding = kafka_binding(settings)
    if binding.bootstrap_servers is None or binding.bootstrap_servers == settings.kafka_bootstrap:
        return settings
    if bootstrap_origin is not None:
        raise SettingsError(
            f"invalid settings: {bootstrap_origin} ({settings.kafka_bootstrap}) and "
            f"bootstrap.servers of {settings.kafka_auth} ({binding.bootstrap_servers}) differ"
        )
    return settings.model_copy(update={"kafka_bootstrap": binding.bootstrap_servers})


def kafka_binding(settings: Settings) -> KafkaBinding:
    """The Kafka credentials named by --kafka-auth; SettingsError when they cannot be used."""
    if settings.kafka_auth is None:
        raise SettingsError("no --kafka-auth given")
    binding = load_binding(settings.kafka_auth)
    if isinstance(binding, BindingError):
        where = f"{flag_name('kafka_auth')} / {env_name('kafka_auth')}"
        raise SettingsError(f"invalid settings: {where}: {binding.message}")
    return binding


def settings_to_json(settings: Settings) -> str:
    return settings.model_dump_json()


def settings_from_json(text: str) -> Settings:
    return Settings.model_validate(json.loads(text))
