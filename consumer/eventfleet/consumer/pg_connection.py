"""The consumer's PostgreSQL connections: every wait bounded, opened lazily, reopened after a
break. The batch store and the Redis rebuilds each hold one."""

from __future__ import annotations

import logging

import psycopg2
import psycopg2.extensions

from eventfleet.consumer import pg_waits
from eventfleet.consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)


def connect(settings: ConsumerSettings) -> psycopg2.extensions.connection:
    """A connection whose every wait is bounded (pg_waits): lock, statement, idle in a
    transaction, and the network (TCP keepalives and user timeout)."""
    return psycopg2.connect(
        settings.postgres_dsn,
        connect_timeout=5,
        application_name=f"eventfleet-{settings.mode}",
        options=pg_waits.with_dsn_options(
            settings.postgres_dsn,
            pg_waits.session_options(
                lock_seconds=settings.postgres_lock_timeout_seconds,
                statement_seconds=settings.postgres_statement_timeout_seconds,
                idle_in_transaction_seconds=settings.postgres_idle_in_transaction_timeout_seconds,
            ),
        ),
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=3,
        keepalives_count=3,
        tcp_user_timeout=15_000,
    )


class LazyConnection:
    """A connection opened on first use, and again after it broke or was closed."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self._connection: psycopg2.extensions.connection | None = None

    def get(self) -> psycopg2.extensions.connection:
        if self._connection is None or self._connection.closed:
            self._connection = connect(self.settings)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except psycopg2.Error:
                log.debug("closing a broken connection failed", exc_info=True)
            self._connection = None
