"""The checksum of the Secrets an EventConsumer's consumers read, for their pod template.

Consumers read their Secrets once, at start (the DSN and Redis URL through secretKeyRef env,
the Kafka binding as files). A changed Secret therefore needs new pods: the checksum is an
annotation of the pod template, so a change rolls the Deployment like any template change. The
operator never watches Secrets (it may only get them): it reads them, through the short cache of
kafka_auth.secret_entries, each time it applies the Deployment, which the autoscaling loop does
once per poll. A rotation reaches the consumers within a poll interval and that cache's life.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from eventfleet.operator.kafka_auth import secret_entries
from eventfleet.operator.spec import EventConsumerSpec

# The part of each Secret that counts: one key (None: every key) of a named Secret.
Reference = tuple[str, str | None]


def referenced(spec: EventConsumerSpec) -> list[Reference]:
    """The Secrets (and keys) the consumers of `spec` read."""
    found: list[Reference] = [(spec.postgres.dsn_secret_ref.name, spec.postgres.dsn_secret_ref.key)]
    if spec.redis is not None:
        found.append((spec.redis.url_secret_ref.name, spec.redis.url_secret_ref.key))
    if spec.kafka.auth_secret_ref is not None:
        found.append((spec.kafka.auth_secret_ref.name, None))
    return found


def checksum(secrets: Mapping[Reference, Mapping[str, bytes] | None]) -> str:
    """A digest of what the references name, pure: it changes when a referenced value does
    (a missing Secret or key counts as a value of its own), and not for other keys."""
    digest = hashlib.sha256()
    for (name, key), data in sorted(
        secrets.items(), key=lambda item: (item[0][0], item[0][1] or "")
    ):
        digest.update(f"secret\0{name}\0".encode())
        if data is None:
            digest.update(b"missing\0")
            continue
        for item in sorted(data) if key is None else [key]:
            value = data.get(item)
            digest.update(f"{item}\0".encode())
            digest.update(b"missing\0" if value is None else b"%d\0" % len(value) + value)
    return digest.hexdigest()[:32]


def referenced_checksum(namespace: str, spec: EventConsumerSpec) -> str:
    """The checksum of the Secrets `spec` references, as they are now."""
    return checksum({ref: secret_entries(namespace, ref[0]) for ref in referenced(spec)})
