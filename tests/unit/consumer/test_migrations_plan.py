"""The migration files and the pure planning of what to apply."""

from __future__ import annotations

import pytest

from eventfleet.consumer.migrate import (
    Applied,
    MigrationError,
    for_mode,
    load,
    plan,
    schema_version,
)
from eventfleet.contract.names import MODES


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_has_shared_then_its_own_migrations(mode: str) -> None:
    migrations = for_mode(mode)  # type: ignore[arg-type]
    assert migrations[0].track == "shared"
    assert migrations[-1].track == mode
    assert schema_version(migrations) >= 1


def test_versions_are_ordered_and_start_at_one() -> None:
    for track in ("shared", *MODES):
        versions = [m.version for m in load(track)]
        assert versions == list(range(1, len(versions) + 1))


def test_plan_applies_what_is_missing() -> None:
    migrations = for_mode("stats")
    assert plan(migrations, []) == migrations
    done = [Applied(m.track, m.version, m.checksum) for m in migrations[:1]]
    assert plan(migrations, done) == migrations[1:]


def test_plan_refuses_an_edited_migration() -> None:
    migrations = for_mode("stats")
    done = [Applied(migrations[0].track, migrations[0].version, "0" * 64)]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        plan(migrations, done)


def test_plan_refuses_a_schema_newer_than_the_image() -> None:
    with pytest.raises(MigrationError, match="file is missing"):
        plan(for_mode("logger"), [Applied("logger", 99, "x")])


def test_other_modes_tracks_do_not_matter() -> None:
    assert plan(for_mode("logger"), [Applied("stats", 99, "x")]) == for_mode("logger")
