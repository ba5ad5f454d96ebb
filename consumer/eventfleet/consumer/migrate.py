"""Versioned SQL migrations: shared tables plus one track per mode.

Files live in `sql/<track>/NNNN_name.sql` inside this package. `apply(dsn, mode)` applies the
`shared` track, then the mode's track, under a PostgreSQL advisory lock, so several replicas and
the operator can run it at once: the first applies, the others wait and find nothing to do. Each
applied migration is recorded with its checksum; a file that changed after it was applied is an
error (write a new migration instead).

Every wait is bounded (pg_waits): the advisory lock is waited for at most lock_timeout_seconds,
then MigrationLockBusyError names its holder and the caller retries (a consumer starting while
the operator builds an index must keep beating, not block); a migration's own lock waits are
bounded the same way. Statements are not: an index build may take long.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

import psycopg2

from eventfleet.consumer import pg_waits
from eventfleet.contract.names import MODES, Mode

TRACKS: Final = ("shared", *MODES)
# Any constant works; it only has to be the same for every process migrating this database.
ADVISORY_LOCK_KEY: Final = 0x6576_6600_0001
# How long the advisory lock (and each lock a migration takes) is waited for before giving up
# for now: well inside a consumer's liveness window.
LOCK_TIMEOUT_SECONDS: Final = 5.0
IDLE_IN_TRANSACTION_SECONDS: Final = 60.0
_FILE_NAME: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOKKEEPING: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    track      text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (track, version)
)
"""


class MigrationError(Exception):
    """The database's migration history disagrees with the files, or a migration failed."""


class DatabaseUnavailableError(MigrationError):
    """PostgreSQL could not be reached, or a lock wait timed out: worth retrying."""


class MigrationLockBusyError(DatabaseUnavailableError):
    """Another session holds the migration lock (`busy` names it): worth retrying."""

    def __init__(self, busy: pg_waits.LockBusyError) -> None:
        self.busy = busy
        super().__init__(str(busy))


@dataclass(frozen=True, slots=True)
class Migration:
    track: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.track}/{self.version:04d}_{self.name}.sql"


@dataclass(frozen=True, slots=True)
class Applied:
    track: str
    version: int
    checksum: str


def load(track: str) -> list[Migration]:
    """The migrations of one track, in version order."""
    folder = resources.files("eventfleet.consumer").joinpath("sql", track)
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(track, int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"track {track!r} has two migrations with the same version")
    return found


def for_mode(mode: Mode) -> list[Migration]:
    return [*load("shared"), *load(mode)]


def plan(migrations: list[Migration], applied: list[Applied]) -> list[Migration]:
    """Which migrations still need applying; refuses a changed or vanished applied migration."""
    done = {(a.track, a.version): a for a in applied}
    known = {(m.track, m.version) for m in migrations}
    tracks = {m.track for m in migrations}
    for key, applied_record in done.items():
        if applied_record.track in tracks and key not in known:
            raise MigrationError(
                f"migration {applied_record.track}/{applied_record.version:04d} is applied in "
                "the database but "
                "its file is missing: this image is older than the schema"
            )
    pending = []
    for migration in migrations:
        record = done.get((migration.track, migration.version))
        if record is None:
            pending.append(migration)
        elif record.checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.label} changed after it was applied (checksum "
                f"{record.checksum[:12]} in the database, {migration.checksum[:12]} in the file); "
                "add a new migration instead of editing an applied one"
            )
    return pending


def schema_version(migrations: list[Migration]) -> int:
    """One number for status: the highest applied version of the mode's own track."""
    own = [m.version for m in migrations if m.track != "shared"]
    return max(own, default=0)


def _connect(
    dsn: str, connect_timeout: int, lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS
) -> psycopg2.extensions.connection:
    options = pg_waits.session_options(
        lock_seconds=lock_timeout_seconds,
        statement_seconds=None,
        idle_in_transaction_seconds=IDLE_IN_TRANSACTION_SECONDS,
    )
    try:
        return psycopg2.connect(
            dsn,
            connect_timeout=connect_timeout,
            options=pg_waits.with_dsn_options(dsn, options),
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=3,
            keepalives_count=3,
        )
    except psycopg2.OperationalError as error:
        raise DatabaseUnavailableError(f"cannot connect to PostgreSQL: {error}".strip()) from error


def apply(
    dsn: str,
    mode: Mode,
    *,
    connect_timeout: int = 10,
    lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS,
) -> list[Migration]:
    """Apply what is pending for `mode`; returns what this call applied (often nothing).
    Raises MigrationLockBusyError when another session held the migration lock for longer
    than `lock_timeout_seconds`."""
    migrations = for_mode(mode)
    connection = _connect(dsn, connect_timeout, lock_timeout_seconds)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            # Session lock: held across the per-migration transactions below.
            try:
                cursor.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
            except psycopg2.errors.LockNotAvailable as error:
                holders = pg_waits.advisory_lock_holders(connection, ADVISORY_LOCK_KEY)
                busy = pg_waits.LockBusyError("migration", "the schema migration lock", holders)
                raise MigrationLockBusyError(busy) from error
            try:
                cursor.execute(_BOOKKEEPING)
                cursor.execute("SELECT track, version, checksum FROM schema_migrations")
                applied = [Applied(t, v, c) for t, v, c in cursor.fetchall()]
                pending = plan(migrations, applied)
                for migration in pending:
                    _apply_one(connection, migration)
                return pending
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    except psycopg2.OperationalError as error:
        raise DatabaseUnavailableError(f"migration interrupted: {error}".strip()) from error
    except psycopg2.Error as error:
        raise MigrationError(f"migration failed: {error}".strip()) from error
    finally:
        connection.close()


@dataclass(frozen=True, slots=True)
class SinkOwner:
    """Who writes a sink (one mode's tables in one database): sql/shared/0002."""

    owner: str  # namespace/name of the EventConsumer
    owner_uid: str | None
    consumer_group: str | None


_READ_OWNER: Final = "SELECT owner, owner_uid, consumer_group FROM sink_owners WHERE sink = %s"
_CLAIM: Final = """
INSERT INTO sink_owners (sink, owner, owner_uid, consumer_group) VALUES (%s, %s, %s, %s)
ON CONFLICT (sink) DO NOTHING
"""
_FOLLOW: Final = """
UPDATE sink_owners
SET owner_uid = coalesce(%s, owner_uid), consumer_group = coalesce(%s, consumer_group)
WHERE sink = %s AND owner = %s
"""
_TAKE_OVER: Final = """
UPDATE sink_owners SET owner = %s, owner_uid = %s, consumer_group = %s, claimed_at = now()
WHERE sink = %s AND owner = %s
"""


def claim_sink(
    dsn: str,
    mode: Mode,
    owner: SinkOwner,
    *,
    take_over_from: str | None = None,
    connect_timeout: int = 10,
) -> SinkOwner:
    """Claim the sink of `mode` in this database for `owner` unless another owner holds it
    (or, with `take_over_from`, unless it is held by someone other than that previous owner,
    which the caller found gone). Returns the sink's owner after the claim: `owner` when the
    claim holds. The schema must be migrated."""
    connection = _connect(dsn, connect_timeout)
    try:
        with connection, connection.cursor() as cursor:
            values = (owner.owner, owner.owner_uid, owner.consumer_group)
            if take_over_from is not None:
                cursor.execute(_TAKE_OVER, (*values, mode, take_over_from))
            cursor.execute(_CLAIM, (mode, *values))
            # The same owner with a new uid (re-created) or group (renamed): its record follows.
            cursor.execute(_FOLLOW, (owner.owner_uid, owner.consumer_group, mode, owner.owner))
            cursor.execute(_READ_OWNER, (mode,))
            row = cursor.fetchone()
    except psycopg2.OperationalError as error:
        raise DatabaseUnavailableError(f"cannot claim the sink: {error}".strip()) from error
    except psycopg2.Error as error:
        raise MigrationError(f"cannot claim the sink: {error}".strip()) from error
    finally:
        connection.close()
    if row is None:
        raise MigrationError(f"the {mode} sink has no owner after claiming it")
    return SinkOwner(row[0], row[1], row[2])


def stored_topic_ids(dsn: str, mode: Mode, topic: str, *, connect_timeout: int = 10) -> set[str]:
    """The Kafka topic ids the sink's stored progress of `topic` counts in (empty: none yet)."""
    connection = _connect(dsn, connect_timeout)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT topic_id FROM sink_offsets "
                "WHERE sink = %s AND topic = %s AND topic_id IS NOT NULL",
                (mode, topic),
            )
            return {row[0] for row in cursor.fetchall()}
    except psycopg2.Error as error:
        raise MigrationError(f"cannot read the sink's progress: {error}".strip()) from error
    finally:
        connection.close()


def _apply_one(connection: psycopg2.extensions.connection, migration: Migration) -> None:
    connection.autocommit = False
    try:
        with connection.cursor() as cursor:
            cursor.execute(migration.sql)
            cursor.execute(
                "INSERT INTO schema_migrations (track, version, name, checksum) "
                "VALUES (%s, %s, %s, %s)",
                (migration.track, migration.version, migration.name, migration.checksum),
            )
        connection.commit()
    except psycopg2.OperationalError:
        connection.rollback()
        raise  # a lock wait that timed out, a lost connection: retried (apply says so)
    except psycopg2.Error as error:
        connection.rollback()
        raise MigrationError(f"{migration.label}: {error}".strip()) from error
    finally:
        connection.autocommit = True
