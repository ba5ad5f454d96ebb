"""The watch-fed registry of EventConsumers and their owned Deployments, and the per-object lock.

The registry is kept from watch events (no finalizer, no extra API calls). It is what the
autoscaling loop walks, where the topic claims for conflict detection come from, and what the
loop reads between polls instead of a GET per object every tick (with a hundred EventConsumers,
that was 150 reads a second of the API server while nothing happened).

`object_locks` keeps a reconcile, a pass of the autoscaling loop, a Deployment event and the
topic deletion of one EventConsumer from interleaving. Status writes are kept apart by a
different lock, the one kube.update_consumer_status holds around its fresh read and patch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from eventfleet.operator import kube
from eventfleet.operator.scaling import Recommendation
from eventfleet.operator.spec import EventConsumerSpec, parse_spec
from eventfleet.operator.topics import TopicClaim

Key = tuple[str, str]  # (namespace, name)


@dataclass
class Known:
    """One watched EventConsumer, and what the autoscaling loop remembers of it between passes."""

    uid: str
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)  # as the watch last delivered it
    last_poll: datetime | None = None
    decided: int | None = None  # the replicas the loop last set or confirmed
    # The decision's history as the last poll left it (None: not polled since the operator
    # started, so it is read from status once): kept here, not read back from status each poll.
    history: tuple[Recommendation, ...] | None = None
    status_written: datetime | None = None  # when a poll last wrote its findings to status
    offsets_written: tuple[tuple[int, int, int | None], ...] | None = None  # ...and its offsets
    # The spec parsed, and the spec it was parsed from: each poll looks at every watched spec
    # (topic claims), which parsed afresh cost 500 parses a poll at 500 EventConsumers.
    parsed: EventConsumerSpec | None = None
    parsed_from: Mapping[str, Any] | None = None

    def parsed_spec(self) -> EventConsumerSpec | None:
        """The spec parsed (None when it is invalid, which reconcile reports)."""
        spec = self.spec
        if self.parsed_from is not spec:
            try:
                self.parsed = parse_spec(spec)
            except ValidationError:
                self.parsed = None
            self.parsed_from = spec
        return self.parsed


_known: dict[Key, Known] = {}
_deployments: dict[Key, dict[str, Any]] = {}  # owned ones, as last delivered
# Per owned Deployment: the fingerprint of the body this process last applied, and the
# generation the API server gave the result.
_applied: dict[Key, tuple[str, int]] = {}
_known_lock = threading.Lock()


class ObjectLocks:
    """One lock per EventConsumer (namespace, name), forgotten once nobody holds or awaits it.

    Reconcile, a pass of the autoscaling loop and the topic deletion each hold it, so they never
    interleave on one object: a pass that read the spec just before a deletion would otherwise
    find the topic missing and create it again after the deletion handler removed it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Key, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: Key) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


object_locks = ObjectLocks()


# ---------------------------------------------------------------------------------------------
# Fed by the watches


def record_consumer(
    key: Key, *, gone: bool, uid: str, spec: Mapping[str, Any], status: Mapping[str, Any]
) -> None:
    """An EventConsumer watch event; `gone` when it was deleted or is being deleted. The entry
    is replaced when the uid changed (deleted and created again), so a pass still holding the
    old entry sees that it is no longer current."""
    with _known_lock:
        if gone:
            _known.pop(key, None)
            kube.forget_consumer(*key)
            return
        entry = _known.get(key)
        if entry is None or entry.uid != uid:
            _known[key] = Known(uid, dict(spec), dict(status))
        else:
            entry.spec = dict(spec)
            entry.status = dict(status)


def record_deployment(key: Key, deployment: dict[str, Any] | None) -> None:
    """An owned Deployment's watch event: the Deployment as delivered, or None once deleted."""
    with _known_lock:
        if deployment is None:
            _deployments.pop(key, None)
            _applied.pop(key, None)
        else:
            _deployments[key] = deployment


def record_applied(key: Key, fingerprint: str, applied: Mapping[str, Any]) -> None:
    """A Deployment was applied: its body's fingerprint and the generation it got."""
    generation = applied.get("metadata", {}).get("generation")
    with _known_lock:
        if isinstance(generation, int):
            _applied[key] = (fingerprint, generation)
        else:
            _applied.pop(key, None)


def already_applied(key: Key, fingerprint: str, deployment: Mapping[str, Any]) -> bool:
    """Whether applying the body of this fingerprint would change nothing: it is the body last
    applied, and the Deployment's spec has not changed since (same generation; a hand edit of
    the spec raises it)."""
    generation = deployment.get("metadata", {}).get("generation")
    with _known_lock:
        return _applied.get(key) == (fingerprint, generation)


# ---------------------------------------------------------------------------------------------
# Read by the autoscaling loop and the handlers


def consumers() -> list[tuple[Key, Known]]:
    """Every watched EventConsumer, as of now."""
    with _known_lock:
        return list(_known.items())


def known(key: Key) -> Known | None:
    """The watched EventConsumer, as the watch last delivered it (None: not delivered, gone or
    going)."""
    with _known_lock:
        return _known.get(key)


def decided_replicas(key: Key) -> int | None:
    """The replicas the autoscaling loop last set or confirmed for the object (None before its
    first pass): the one source every writer of the Deployment applies."""
    with _known_lock:
        entry = _known.get(key)
        return None if entry is None else entry.decided


def still_current(key: Key, entry: Known) -> bool:
    """False once the object was deleted (or deleted and created again) since `entry` was read."""
    with _known_lock:
        return _known.get(key) is entry


def seen_deployment(namespace: str, name: str) -> dict[str, Any] | None:
    """The owned Deployment as the watch last delivered it; None until it has. Not read from the
    API instead: while hundreds of EventConsumers wait for their first reconcile, a read of each
    missing Deployment every tick was a GET (answered 404) per EventConsumer every 2 s. The
    watch delivers a new Deployment within a tick, and reconcile creates a missing one."""
    with _known_lock:
        return _deployments.get((namespace, name))


def topic_readers(spec: EventConsumerSpec) -> list[str]:
    """Every watched EventConsumer (namespace/name) that reads a topic of this name, whether or
    not it manages it. The bootstrap servers are not compared: two spellings of one cluster's
    address would look like two clusters, and keeping a topic by mistake is the safe error."""
    readers = []
    for (namespace, name), entry in consumers():
        other = entry.parsed_spec()
        if other is None:
            continue
        if other.kafka.topic == spec.kafka.topic:
            readers.append(f"{namespace}/{name}")
    return readers


def topic_claims(spec: EventConsumerSpec) -> list[TopicClaim]:
    """Topic claims of every watched EventConsumer on this spec's topic (for the loop, which
    has no kopf index at hand)."""
    claims = []
    for (namespace, name), entry in consumers():
        other = entry.parsed_spec()
        if other is None:
            continue
        if other.topic is not None and other.kafka.topic == spec.kafka.topic:
            claims.append(
                TopicClaim(
                    f"{namespace}/{name}",
                    other.kafka.bootstrap_servers,
                    other.kafka.topic,
                    other.topic,
                )
            )
    return claims
