"""Leader election on a coordination.k8s.io Lease: of several operator replicas, one acts.

kopf's peering pauses kopf's own handlers, but not the autoscaling loop (a thread of ours), and
replicas of equal priority all pause. So the operator elects a leader before kopf starts at all:

- a standby waits, answering /healthz, until the Lease is free or its holder stopped renewing
  for leaseDurationSeconds (measured on the standby's own clock, from when it last saw the
  record change, so clock skew between nodes does not matter);
- the leader renews every RENEW_SECONDS. If it cannot renew for RENEW_DEADLINE_SECONDS (well
  inside the lease duration), it exits at once, before any standby may take over, so two
  replicas never act at the same time;
- a leader that stops normally releases the Lease, and a standby takes over within one retry.

A SIGKILLed leader is replaced after at most LEASE_SECONDS + RETRY_SECONDS, plus kopf's start.
The decision is `next_step` (pure); the rest is I/O.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from kubernetes.client.exceptions import ApiException

from eventfleet.operator import kube, metrics

log = logging.getLogger(__name__)

LEASE_NAME: Final = "eventfleet-operator"
LEASE_SECONDS: Final = 15  # a silent holder is replaced after this
RENEW_SECONDS: Final = 3.0
RENEW_DEADLINE_SECONDS: Final = 10.0  # the leader gives up this long after its last renewal
RETRY_SECONDS: Final = 2.0  # how often a standby looks

Step = Literal["create", "renew", "take", "wait"]


@dataclass(frozen=True, slots=True)
class Observed:
    """The Lease as read: who holds it, and for how long a silence counts as still held."""

    holder: str
    duration_seconds: int


def next_step(observed: Observed | None, me: str, unchanged_for: float) -> Step:
    """What a replica does with the Lease it read (None: there is none), given how long (on its
    own clock) the record has not changed."""
    if observed is None:
        return "create"
    if observed.holder == me:
        return "renew"
    if not observed.holder or unchanged_for >= observed.duration_seconds:
        return "take"
    return "wait"


def identity() -> str:
    """This replica's name in the Lease: the pod (hostname), the process and a random part, so a
    restarted process never mistakes its predecessor's lease for its own."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    def __init__(self, namespace: str, name: str = LEASE_NAME) -> None:
        self.namespace, self.name, self.me = namespace, name, identity()
        self._seen: tuple[Any, ...] | None = None
        self._seen_since = time.monotonic()
        self._last_renewal = 0.0
        self._stop = threading.Event()

    # The Lease goes in and out as a plain dict (the client accepts one where its hints say
    # V1Lease): its fields read as the API names them.
    def _read(self) -> dict[str, Any] | None:
        api = kube.coordination()
        try:
            lease = api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        found: dict[str, Any] = api.api_client.sanitize_for_serialization(lease)
        return found

    def _attempt(self) -> bool:
        """One look at the Lease, and the write that follows; True while this replica holds it."""
        lease = self._read()
        observed = None
        spec: dict[str, Any] = {}
        if lease is not None:
            spec = lease.get("spec") or {}
            version = lease["metadata"].get("resourceVersion")
            record = (spec.get("holderIdentity"), spec.get("renewTime"), version)
            if record != self._seen:
                self._seen, self._seen_since = record, time.monotonic()
            holder, duration = spec.get("holderIdentity") or "", spec.get("leaseDurationSeconds")
            observed = Observed(holder, duration or 0)
        step = next_step(observed, self.me, time.monotonic() - self._seen_since)
        if step == "wait":
            return False
        now = _now()
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.me,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now,
                "acquireTime": spec.get("acquireTime", now) if step == "renew" else now,
                "leaseTransitions": (spec.get("leaseTransitions") or 0) + (step == "take"),
            },
        }
        api = kube.coordination()
        try:
            if lease is None:
                api.create_namespaced_lease(self.namespace, body)  # type: ignore[arg-type]
            else:
                # The resourceVersion makes this a compare-and-swap: of two standbys taking a
                # free Lease at once, one gets 409 Conflict and goes on waiting.
                body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
                api.replace_namespaced_lease(self.name, self.namespace, body)  # type: ignore[arg-type]
        except ApiException as error:
            if error.status in {409, 422} or (error.status == 404 and lease is not None):
                return False
            raise
        if step != "renew":
            log.info("leader election: %s now leads (Lease %s/%s)", self.me, *self._where())
        return True

    def _where(self) -> tuple[str, str]:
        return self.namespace, self.name

    def acquire(self, stopping: Callable[[], bool]) -> bool:
        """Wait until this replica holds the Lease (True), or `stopping()` turns true (False)."""
        log.info("leader election: %s waits for Lease %s/%s", self.me, *self._where())
        while not stopping():
            try:
                if self._attempt():
                    self._last_renewal = time.monotonic()
                    metrics.LEADER.set(1)
                    return True
            except (ApiException, OSError) as error:
                log.warning("leader election: cannot read the Lease: %s", error)
            time.sleep(RETRY_SECONDS)
        return False

    def keep(self, lost: Callable[[], None]) -> threading.Thread:
        """Renew the Lease in a thread; call `lost` once renewal failed for the deadline."""

        def renew() -> None:
            while not self._stop.wait(RENEW_SECONDS):
                try:
                    if self._attempt():
                        self._last_renewal = time.monotonic()
                        continue
                    # Read and not ours (or a lost compare-and-swap): another replica leads.
                    taken, reason = True, "another replica holds the Lease"
                except (ApiException, OSError) as error:
                    taken, reason = False, f"cannot renew the Lease: {error}"
                silent = time.monotonic() - self._last_renewal
                if taken or silent >= RENEW_DEADLINE_SECONDS:
                    metrics.LEADER.set(0)
                    log.error("leader election: leadership lost (%s): stopping", reason)
                    lost()
                    return
                log.warning("leader election: %s; retrying", reason)

        thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Give the Lease up at a normal stop, so a standby takes over at its next look."""
        self._stop.set()
        try:
            lease = self._read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.me:
                return
            lease["spec"]["holderIdentity"] = ""
            kube.coordination().replace_namespaced_lease(self.name, self.namespace, lease)  # type: ignore[arg-type]
            metrics.LEADER.set(0)
            log.info("leader election: %s released the Lease", self.me)
        except (ApiException, OSError) as error:
            log.warning("leader election: could not release the Lease: %s", error)
