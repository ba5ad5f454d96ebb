"""Bounded PostgreSQL waits: the session settings, and how a wait and its holder are said."""

from __future__ import annotations

import pytest

from eventfleet.consumer.observability import Health
from eventfleet.consumer.pg_waits import Holder, LockBusyError, session_options, with_dsn_options
from eventfleet.consumer.settings import SettingsError, load_settings

REQUIRED = {"EVENTFLEET_MODE": "logger", "EVENTFLEET_KAFKA_BOOTSTRAP": "k:9092",
            "EVENTFLEET_POSTGRES_DSN": "postgresql://x"}  # fmt: skip


def test_every_wait_of_a_session_is_set_in_milliseconds() -> None:
    options = session_options(lock_seconds=5, statement_seconds=30, idle_in_transaction_seconds=60)
    assert options.split() == [
        "-c", "lock_timeout=5000",
        "-c", "idle_in_transaction_session_timeout=60000",
        "-c", "statement_timeout=30000",
    ]  # fmt: skip
    # Migrations: no statement limit (an index build may take long), and never a 0 (no limit).
    options = session_options(
        lock_seconds=0.0001, statement_seconds=None, idle_in_transaction_seconds=60
    )
    assert "statement_timeout" not in options
    assert "lock_timeout=1 " in options


def test_a_lock_wait_names_the_lock_and_each_holder() -> None:
    holder = Holder(4242, "eventfleet-stats", "10.0.0.5", "idle in transaction", 42.4)
    busy = LockBusyError("offset_rows", "the lock on the sink's offset rows (t/0)")
    assert str(busy) == "waiting for the lock on the sink's offset rows (t/0)"
    busy.with_holders([holder, Holder(7, "", None, None, None)])
    assert str(busy) == (
        "waiting for the lock on the sink's offset rows (t/0), held by pid 4242 (application "
        "'eventfleet-stats', client 10.0.0.5, idle in transaction for 42 s); pid 7 "
        "(no application, local)"
    )


def test_the_probes_say_the_known_wait_until_ready_again() -> None:
    health = Health()
    assert health.saying("ok") == b"ok\n"
    health.wait_for("waiting for the schema migration lock")
    assert health.saying("ok") == b"ok: waiting for the schema migration lock (for 0 s)\n"
    health.ready = True
    assert health.saying("ready") == b"ready\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POSTGRES_LOCK_TIMEOUT_SECONDS", "31"),  # beyond what liveness waits for
        ("POSTGRES_LOCK_TIMEOUT_SECONDS", "0"),  # 0 would mean no limit in PostgreSQL
        ("POSTGRES_STATEMENT_TIMEOUT_SECONDS", "46"),
        ("POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", "0"),
    ],
)
def test_waits_that_liveness_would_not_outlast_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name.lower()):
        load_settings([], {**REQUIRED, "EVENTFLEET_" + name: value})


def test_the_defaults_keep_the_lock_wait_well_inside_liveness() -> None:
    settings = load_settings([], REQUIRED)
    assert settings.postgres_lock_timeout_seconds == 5.0
    assert settings.postgres_statement_timeout_seconds == 30.0
    assert settings.postgres_idle_in_transaction_timeout_seconds == 60.0


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:p@h/db", "-c lock_timeout=5"),
        (
            "postgresql://u:p@h/db?options=-csearch_path%3Dsink_a",
            "-csearch_path=sink_a -c lock_timeout=5",
        ),
        ("host=h dbname=db options='-c work_mem=64MB'", "-c work_mem=64MB -c lock_timeout=5"),
        ("not a dsn ===", "-c lock_timeout=5"),
    ],
)
def test_the_dsns_own_options_are_kept(dsn: str, expected: str) -> None:
    """A DSN that puts the sink in its own schema keeps it: the consumer's waits are added to
    its options, never in place of them."""
    assert with_dsn_options(dsn, "-c lock_timeout=5") == expected
