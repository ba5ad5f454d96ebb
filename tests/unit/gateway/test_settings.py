from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventfleet.gateway.cli import main
from eventfleet.gateway.producer import producer_config
from eventfleet.gateway.settings import (
    Settings,
    SettingsError,
    load_settings,
    read_api_keys,
    settings_from_json,
    settings_to_json,
)


def test_defaults_are_safe() -> None:
    settings = load_settings([], {})
    assert settings.ack_mode == "ack"  # fire-and-forget is opt-in
    assert settings.rate_limit_per_second == 0
    assert settings.all_api_keys() == frozenset()


def test_flags_win_over_environment() -> None:
    settings = load_settings(
        ["--port", "9000", "--api-keys", "k1", "--api-keys", "k2"],
        {
            "EVENTFLEET_GATEWAY_PORT": "8000",
            "EVENTFLEET_GATEWAY_WORKERS": "2",
            "EVENTFLEET_GATEWAY_API_KEYS": "x,y",
            "EVENTFLEET_GATEWAY_KAFKA_CONFIG": "socket.timeout.ms=1000, client.rack=a",
        },
    )
    assert settings.port == 9000
    assert settings.workers == 2
    assert settings.api_keys == ("k1", "k2")
    assert settings.kafka_config == {"socket.timeout.ms": "1000", "client.rack": "a"}


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--port", "70000"], {}, "--port"),
        ([], {"EVENTFLEET_GATEWAY_PORT": "http"}, "EVENTFLEET_GATEWAY_PORT"),
        (["--ack-mode", "maybe"], {}, "--ack-mode"),
        ([], {"EVENTFLEET_GATEWAY_TOPIC": "bad topic"}, "EVENTFLEET_GATEWAY_TOPIC"),
        (["--api-keys-file", "/nonexistent/keys"], {}, "--api-keys-file"),
        (["--rate-limit-per-second", "-1"], {}, "--rate-limit-per-second"),
        (["--kafka-config", "novalue"], {}, "kafka_config"),
    ],
)
def test_a_bad_value_names_its_setting(
    argv: list[str], environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(argv, environ)


def test_cli_exits_non_zero_naming_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--workers", "zero"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_api_keys_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# clients\nalpha\n\n beta  # the mobile app\n", encoding="utf-8")
    settings = load_settings(["--api-keys-file", str(keys), "--api-keys", "gamma"], {})
    assert settings.all_api_keys() == {"alpha", "beta", "gamma"}
    assert read_api_keys("") == []


def test_settings_travel_to_the_workers_unchanged() -> None:
    settings = Settings(port=1234, api_keys=("a",), kafka_config={"x": "y"})
    assert settings_from_json(settings_to_json(settings)) == settings


def test_kafka_credentials_from_a_binding_file(tmp_path: Path) -> None:
    binding = tmp_path / "kafka.json"
    binding.write_text(
        json.dumps(
            {
                "bootstrap.servers": "kafka:9094",
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "username": "gateway",
                "password": "pw-0815",
            }
        )
    )
    settings = load_settings(["--kafka-auth", str(binding)], {})
    assert settings.kafka_bootstrap == "kafka:9094"  # the binding's brokers
    config = producer_config(settings)
    assert (config["sasl.username"], config["sasl.password"]) == ("gateway", "pw-0815")
    assert config["security.protocol"] == "SASL_SSL"
    assert config["enable.idempotence"] is True
    with pytest.raises(SettingsError, match="differ"):
        load_settings(["--kafka-auth", str(binding), "--kafka-bootstrap", "other:9092"], {})


def test_a_bad_binding_file_is_refused_at_start_naming_the_key(tmp_path: Path) -> None:
    binding = tmp_path / "kafka.json"
    binding.write_text(json.dumps({"security.protocol": "SASL_SSL", "password": "pw-0815"}))
    with pytest.raises(SettingsError, match=r"sasl\.mechanism") as refused:
        load_settings([], {"EVENTFLEET_GATEWAY_KAFKA_AUTH": str(binding)})
    assert "pw-0815" not in str(refused.value)
