"""Consumer settings: flags over environment over defaults, validated with named errors."""

from __future__ import annotations

import pytest

from eventfleet.consumer.settings import SettingsError, load_settings

ENV = {
    "EVENTFLEET_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "EVENTFLEET_POSTGRES_DSN": "postgresql://u:secret@db/x",
    "EVENTFLEET_REDIS_URL": "redis://127.0.0.1:6379/0",
}


def test_defaults_follow_the_architecture() -> None:
    settings = load_settings(["--mode", "stats"], ENV)
    assert settings.topic == "player.events.raw"
    assert settings.group == "event-consumer-stats"
    assert (settings.batch_size, settings.batch_timeout_ms) == (1000, 100)
    assert (settings.redis_stats_db, settings.redis_leaderboard_db) == (0, 1)
    assert settings.redis_db == 0
    assert load_settings(["--mode", "leaderboard"], ENV).redis_db == 1


def test_flags_override_the_environment() -> None:
    env = {**ENV, "EVENTFLEET_MODE": "logger", "EVENTFLEET_BATCH_SIZE": "10"}
    assert load_settings([], env).batch_size == 10
    assert load_settings(["--batch-size", "20"], env).batch_size == 20
    boards = load_settings(["--mode", "leaderboard", "--boards", "wins, level"], ENV).boards
    assert boards == ("wins", "level")


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (
            ["--mode", "stats", "--batch-size", "0"],
            ENV,
            "batch_size (--batch-size / EVENTFLEET_BATCH_SIZE)",
        ),
        (["--mode", "x"], ENV, "mode"),
        (["--mode", "logger", "--batch-timeout-ms", "soon"], ENV, "batch_timeout_ms"),
        (["--mode", "leaderboard", "--boards", "kills"], ENV, "boards"),
        (["--mode", "stats", "--redis-stats-db", "16"], ENV, "redis_stats_db"),
        (["--mode", "stats"], {**ENV, "EVENTFLEET_REDIS_URL": ""}, "redis_url is required"),
        (["--mode", "logger"], {}, "missing setting kafka_bootstrap"),
    ],
)
def test_bad_values_name_the_setting(argv: list[str], env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(argv, env)
    assert named in str(error.value)


def test_errors_never_echo_a_dsn() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(["--mode", "logger", "--batch-size", "-1"], ENV)
    assert "secret" not in str(error.value)
