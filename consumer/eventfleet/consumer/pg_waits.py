"""Bounded waits on PostgreSQL: the session settings that bound every wait of a connection, and,
when a lock wait reaches its timeout, who holds the lock (for the log line, /healthz and the
lock_waits metric).

Without them a lock held by a session that will never finish (an owner cut off mid-transaction,
its node gone) blocked the waiting statement until the server noticed the dead peer, which takes
hours by default; the loop stopped beating meanwhile and the pod was killed, rebalanced and
blocked again (issue 15). With them the statement fails after lock_timeout, the work is retried,
and the loop beats and names the holder in between; idle_in_transaction_session_timeout bounds
how long a partitioned-away session of ours can hold its locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import psycopg2
import psycopg2.extensions

# Any relation lock a transaction that locked or changed rows of a table holds on it: a
# SELECT ... FOR UPDATE takes RowShareLock, an INSERT or UPDATE RowExclusiveLock.
_ROW_HOLDERS: Final = """
SELECT DISTINCT a.pid, a.application_name, a.client_addr::text, a.state,
       extract(epoch FROM now() - a.xact_start)::float8
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.granted AND l.relation = to_regclass(%s)
  AND l.mode IN ('RowShareLock', 'RowExclusiveLock') AND a.pid <> pg_backend_pid()
  AND a.xact_start IS NOT NULL
ORDER BY 5 DESC NULLS LAST
LIMIT 5
"""
# A bigint advisory key is held as (classid: its high 32 bits, objid: its low 32 bits,
# objsubid 1) in this database.
_ADVISORY_HOLDERS: Final = """
SELECT a.pid, a.application_name, a.client_addr::text, a.state,
       extract(epoch FROM now() - a.backend_start)::float8
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid AND l.objid = %s::oid
  AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND a.pid <> pg_backend_pid()
"""


def session_options(
    *, lock_seconds: float, statement_seconds: float | None, idle_in_transaction_seconds: float
) -> str:
    """libpq `options` that set a session's waits (statement_seconds None: no statement limit,
    for migrations, whose index builds may take long)."""

    def ms(seconds: float) -> int:
        return max(int(seconds * 1000), 1)

    parts = [
        f"-c lock_timeout={ms(lock_seconds)}",
        f"-c idle_in_transaction_session_timeout={ms(idle_in_transaction_seconds)}",
    ]
    if statement_seconds is not None:
        parts.append(f"-c statement_timeout={ms(statement_seconds)}")
    return " ".join(parts)


def with_dsn_options(dsn: str, ours: str) -> str:
    """The DSN's own libpq `options` (a search_path, say) followed by `ours`: passed alone as a
    keyword to connect, ours would replace them, and a sink in its own schema would write to
    the default one. A DSN libpq cannot parse keeps ours only; connect then names its error."""
    try:
        theirs = psycopg2.extensions.parse_dsn(dsn).get("options", "")
    except psycopg2.ProgrammingError:
        theirs = ""
    return f"{theirs} {ours}".strip()


@dataclass(frozen=True, slots=True)
class Holder:
    """A session holding a lock someone waits for."""

    pid: int
    application: str
    client: str | None
    state: str | None
    seconds: float | None  # in its transaction (row locks) or connected (advisory locks)

    def describe(self) -> str:
        where = f"application {self.application!r}" if self.application else "no application"
        details = [where, f"client {self.client}" if self.client else "local"]
        if self.state:
            held = f" for {self.seconds:.0f} s" if self.seconds is not None else ""
            details.append(f"{self.state}{held}")
        return f"pid {self.pid} ({', '.join(details)})"


class LockBusyError(Exception):
    """A lock wait reached lock_timeout. `lock` names the lock for the metric (offset_rows,
    migration, other), `what` for people, `holders` who held it just after (maybe nobody: it
    may have gone meanwhile)."""

    def __init__(self, lock: str, what: str, holders: list[Holder] | None = None) -> None:
        self.lock = lock
        self.what = what
        self.holders = holders or []
        super().__init__(self.describe())

    def describe(self) -> str:
        if not self.holders:
            return f"waiting for {self.what}"
        return f"waiting for {self.what}, held by " + "; ".join(
            holder.describe() for holder in self.holders
        )

    def with_holders(self, holders: list[Holder]) -> LockBusyError:
        self.holders = holders
        self.args = (self.describe(),)
        return self


def is_lock_timeout(error: BaseException) -> bool:
    return isinstance(error, psycopg2.errors.LockNotAvailable)


def _holders(
    connection: psycopg2.extensions.connection, query: str, args: tuple[object, ...]
) -> list[Holder]:
    """The holders `query` finds, on a connection not inside a failed transaction; [] when
    PostgreSQL cannot say (the caller is reporting a wait, not doing the work)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, args)
            found = [Holder(*row) for row in cursor.fetchall()]
        connection.commit()
    except psycopg2.Error:
        return []
    return found


def row_lock_holders(connection: psycopg2.extensions.connection, table: str) -> list[Holder]:
    """Sessions inside a transaction that locked or changed rows of `table`, oldest first."""
    return _holders(connection, _ROW_HOLDERS, (table,))


def advisory_lock_holders(connection: psycopg2.extensions.connection, key: int) -> list[Holder]:
    return _holders(connection, _ADVISORY_HOLDERS, ((key >> 32) & 0xFFFF_FFFF, key & 0xFFFF_FFFF))
