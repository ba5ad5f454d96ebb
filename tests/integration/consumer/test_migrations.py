"""Migrations on a real PostgreSQL: idempotent, safe when run concurrently, refusing a changed
applied migration; logger partitions created ahead and dropped when expired."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from eventfleet.consumer import migrate
from eventfleet.consumer.aggregate import partition_name
from eventfleet.consumer.cli import main as consumer_main
from eventfleet.consumer.migrate_cli import main as migrate_main
from eventfleet.consumer.modes.leaderboard import LeaderboardMode
from eventfleet.consumer.modes.logger import LoggerMode
from eventfleet.consumer.settings import ConsumerSettings
from eventfleet.contract.names import MODES
from tests.integration.consumer.helpers import rows

pytestmark = pytest.mark.integration


def test_every_mode_applies_once_and_again_is_a_no_op(postgres_dsn: str) -> None:
    for mode in MODES:
        first = migrate.apply(postgres_dsn, mode)
        assert first
        assert migrate.apply(postgres_dsn, mode) == []
    tracks = rows(
        postgres_dsn, "SELECT track, version, checksum FROM schema_migrations ORDER BY 1, 2"
    )
    assert {t for t, _, _ in tracks} == {"shared", *MODES}
    tables = {
        t
        for (t,) in rows(
            postgres_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert {
        "events",
        "player_statistics",
        "leaderboards",
        "dlq_events",
        "consumer_offsets",
    } <= tables


def test_key_columns_compare_bytes_not_the_locale(postgres_dsn: str) -> None:
    """The upserts' index descents compare ids byte by byte (COLLATE "C"): the database's
    locale would cost a strcoll() per comparison and order ties unlike Redis does."""
    for mode in ("stats", "leaderboard"):
        migrate.apply(postgres_dsn, mode)
    collations = {
        (table, column): collation
        for table, column, collation in rows(
            postgres_dsn,
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_name IN ('player_statistics', 'leaderboards') "
            "AND data_type = 'text'",
        )
    }
    assert collations == {
        ("player_statistics", "game_id"): "C",
        ("player_statistics", "player_id"): "C",
        ("leaderboards", "game_id"): "C",
        ("leaderboards", "period"): "C",
        ("leaderboards", "period_key"): "C",
        ("leaderboards", "player_id"): "C",
    }


def test_primary_keys_lead_with_the_player(postgres_dsn: str) -> None:
    """Each upsert descends the primary key once per row; with the player first, nearly every
    comparison is decided by the first column (the few games and periods are equal)."""
    for mode in ("stats", "leaderboard"):
        migrate.apply(postgres_dsn, mode)
    keys = dict(
        rows(
            postgres_dsn,
            "SELECT c.conrelid::regclass::text, array_agg(a.attname::text ORDER BY k.n) "
            "FROM pg_constraint c "
            "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
            "WHERE c.contype = 'p' "
            "AND c.conrelid IN ('player_statistics'::regclass, 'leaderboards'::regclass) "
            "GROUP BY 1",
        )
    )
    assert keys == {
        "player_statistics": ["player_id", "game_id"],
        "leaderboards": ["player_id", "game_id", "period", "period_key"],
    }


def test_concurrent_runs_apply_each_migration_exactly_once(postgres_dsn: str) -> None:
    errors: list[BaseException] = []
    applied: list[list[str]] = []

    def run(mode: str) -> None:
        try:
            applied.append([m.label for m in migrate.apply(postgres_dsn, mode)])  # type: ignore[arg-type]
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(mode,)) for mode in [*MODES, *MODES]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    labels = [label for batch in applied for label in batch]
    assert len(labels) == len(set(labels))  # nobody applied a migration twice
    assert labels.count("shared/0001_offsets_and_dlq.sql") == 1


def test_a_changed_applied_migration_is_refused(postgres_dsn: str) -> None:
    migrate.apply(postgres_dsn, "stats")
    with psycopg2.connect(postgres_dsn) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE track = 'stats'")
    connection.close()
    with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
        migrate.apply(postgres_dsn, "stats")
    assert migrate_main(["--mode", "stats", "--dsn", postgres_dsn]) == 1


def test_migrate_command(postgres_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate_main(["--mode", "leaderboard", "--dsn", postgres_dsn]) == 0
    assert "applied leaderboard/0001_leaderboards.sql" in capsys.readouterr().out
    assert migrate_main(["--mode", "leaderboard", "--dsn", postgres_dsn]) == 0
    assert "(0 applied now)" in capsys.readouterr().out


def test_logger_partitions_are_created_ahead_and_expired_ones_dropped(postgres_dsn: str) -> None:
    migrate.apply(postgres_dsn, "logger")
    settings = ConsumerSettings(
        mode="logger",
        kafka_bootstrap="unused:9092",
        postgres_dsn=postgres_dsn,
        retention_days=3,
        partitions_ahead_days=2,
    )
    now = datetime.now(UTC)
    old_day = (now - timedelta(days=10)).date()
    with psycopg2.connect(postgres_dsn) as connection, connection.cursor() as cursor:
        start = datetime(old_day.year, old_day.month, old_day.day, tzinfo=UTC)
        cursor.execute(
            f"CREATE TABLE {partition_name(old_day)} PARTITION OF events "
            "FOR VALUES FROM (%s) TO (%s)",
            (start, start + timedelta(days=1)),
        )
    connection = psycopg2.connect(postgres_dsn)
    try:
        LoggerMode(settings).maintain(connection, now)
    finally:
        connection.close()
    names = {
        n
        for (n,) in rows(
            postgres_dsn, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'events_p%'"
        )
    }
    wanted = {partition_name((now + timedelta(days=n)).date()) for n in range(3)}
    assert wanted <= names
    assert partition_name(old_day) not in names


def test_expired_daily_and_weekly_boards_are_deleted(postgres_dsn: str) -> None:
    migrate.apply(postgres_dsn, "leaderboard")
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    with psycopg2.connect(postgres_dsn) as connection, connection.cursor() as cursor:
        for period, key in [
            ("all_time", "all_time"),
            ("daily", "2026-11-19"),  # ended 8 days ago: past the 7 days kept
            ("daily", "2026-11-20"),
            ("weekly", "2026-W42"),  # past the 5 weeks kept
            ("weekly", "2026-W43"),
        ]:
            cursor.execute(
                "INSERT INTO leaderboards (game_id, period, period_key, player_id, wins, boards) "
                "VALUES ('g', %s, %s, 'p', 1, 8)",
                (period, key),
            )
    connection.close()
    settings = ConsumerSettings(
        mode="leaderboard",
        kafka_bootstrap="unused:9092",
        postgres_dsn=postgres_dsn,
        redis_url="redis://unused:6379",
        daily_keep_days=7,
        weekly_keep_weeks=5,
    )
    connection = psycopg2.connect(postgres_dsn)
    try:
        LeaderboardMode(settings).maintain(connection, now)
    finally:
        connection.close()
    left = rows(postgres_dsn, "SELECT period, period_key FROM leaderboards ORDER BY 1, 2")
    assert left == [("all_time", "all_time"), ("daily", "2026-11-20"), ("weekly", "2026-W43")]


def test_consumer_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        consumer_main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "--batch-timeout-ms" in out
    assert "EVENTFLEET_REDIS_STATS_DB" in out
