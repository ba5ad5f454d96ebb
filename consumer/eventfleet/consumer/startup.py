"""What a consumer does before its first batch (runtime.py's lifecycle): apply the schema's
migrations and claim the sink, retrying until they succeed or the consumer is stopped.

Both may wait for another session (the migration lock held while the operator builds an index,
the sink owned by another EventConsumer). Each wait is bounded and retried, and the loop keeps
beating and says what it waits for on the probes (Health.wait_for) and in the log, so a consumer
that waits correctly is never killed for it.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Final

from eventfleet.consumer import migrate
from eventfleet.consumer.observability import Health, Metrics
from eventfleet.consumer.parts import StorePart
from eventfleet.consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)
# How long a sink owned by another EventConsumer is waited for before looking again.
SINK_RECHECK_SECONDS: Final = 10.0
# How often the loop beats while a migration runs (in a thread: an index build may take long,
# and applying it is progress).
BEAT_SECONDS: Final = 0.5


def pause(seconds: float, stop: threading.Event, health: Health) -> None:
    """Wait `seconds` (or until stopped), beating: waiting correctly is not a reason to be
    killed."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        health.beat()
        stop.wait(min(BEAT_SECONDS, max(deadline - time.monotonic(), 0)))


def _apply_beating(store: StorePart, health: Health) -> list[migrate.Migration]:
    with ThreadPoolExecutor(1, thread_name_prefix="migrate") as pool:
        future = pool.submit(store.apply_migrations)
        while True:
            health.beat()
            try:
                return future.result(timeout=BEAT_SECONDS)
            except FutureTimeout:
                continue


def migrate_schema(
    store: StorePart,
    settings: ConsumerSettings,
    health: Health,
    metrics: Metrics,
    stop: threading.Event,
) -> bool:
    """Apply the mode's pending migrations, retrying while PostgreSQL is unreachable or the
    migration lock is held elsewhere. False: refused (logged), or stopped first."""
    backoff = 0.5
    while not stop.is_set():
        try:
            applied = _apply_beating(store, health)
        except migrate.MigrationLockBusyError as error:
            health.ready = False
            health.wait_for(error.busy.describe())
            metrics.lock_waits.labels(error.busy.lock).inc()
            log.warning(
                "the schema migration lock is held by another session; retrying",
                extra={"waiting_for": error.busy.what, "holders": error.busy.describe()},
            )
            pause(backoff, stop, health)
            backoff = min(backoff * 2, settings.max_backoff_seconds)
            continue
        except migrate.DatabaseUnavailableError as error:
            health.ready = False
            health.wait_for(f"waiting for PostgreSQL to migrate the schema: {error}")
            log.warning("cannot migrate yet; retrying", extra={"error": str(error)})
            pause(backoff, stop, health)
            backoff = min(backoff * 2, settings.max_backoff_seconds)
            continue
        except migrate.MigrationError:
            log.exception("schema migration refused")
            return False
        health.wait_for(None)
        if applied:
            log.info("migrations applied", extra={"applied": [m.label for m in applied]})
        return True
    return False


def claim_sink(
    store: StorePart,
    settings: ConsumerSettings,
    sink: str,
    health: Health,
    stop: threading.Event,
) -> bool:
    """With a sink owner set: write only a sink this consumer's EventConsumer owns. A sink
    another one owns is waited for (not ready, saying whose it is): the operator hands it
    over when that one is gone. False: stopped while waiting."""
    if settings.sink_owner is None:
        return True
    me = migrate.SinkOwner(settings.sink_owner, None, settings.group)
    while not stop.is_set():
        health.beat()
        try:
            found = store.claim_sink(me)
        except migrate.MigrationError as error:
            health.wait_for(f"waiting for PostgreSQL to claim the sink: {error}")
            log.warning("cannot claim the sink yet; retrying", extra={"error": str(error)})
        else:
            if found.owner == me.owner:
                health.wait_for(None)
                return True
            health.wait_for(f"waiting for the {sink} sink, written by {found.owner}")
            log.error(
                "this database's sink is written by another EventConsumer; waiting",
                extra={"sink": sink, "owner": found.owner, "me": me.owner},
            )
        health.ready = False
        pause(SINK_RECHECK_SECONDS, stop, health)
    return False
