"""The operator's Kafka credentials: the EventConsumer's kafka.authSecretRef, read and checked.

The Secret is in the binding format (eventfleet.contract.kafka_binding). The operator reads it
with a GET (never a list or a watch), at most once per SECRET_TTL_SECONDS per Secret, and uses
it for its own admin and lag reads; the consumers get it as a mounted volume. A Secret that is
missing or that the binding parser refuses raises KafkaAuthInvalidError naming the key, which
reconcile turns into TopicReady=False (reason KafkaAuthInvalid) and an Event, and no consumers
are deployed with it. Nothing here logs or returns a secret value in a message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from eventfleet.contract.kafka_binding import BindingError, KafkaBinding, parse_binding
from eventfleet.operator import kube
from eventfleet.operator.conditions import Condition, ConditionType
from eventfleet.operator.spec import EventConsumerSpec

SECRET_TTL_SECONDS: Final = 10.0
REASON_INVALID: Final = "KafkaAuthInvalid"


class KafkaAuthInvalidError(Exception):
    """The Kafka binding Secret is missing or malformed (the message names the key)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class KafkaConnection:
    """Where and how to reach one Kafka cluster: bootstrap servers and the librdkafka security
    settings (kept out of repr). Hashable: Kafka clients are shared per connection."""

    bootstrap: str
    settings: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def config(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap, **dict(self.settings)}


def connection_from(
    spec: EventConsumerSpec, entries: Mapping[str, bytes | str] | None
) -> KafkaConnection | BindingError:
    """The connection of an EventConsumer whose binding Secret holds `entries` (None: it names
    no Secret). Pure."""
    return connection_of(spec.kafka.bootstrap_servers, entries)


def connection_of(
    bootstrap: str, entries: Mapping[str, bytes | str] | None
) -> KafkaConnection | BindingError:
    """The connection to `bootstrap` with the binding `entries` (None: PLAINTEXT). Pure."""
    if entries is None:
        return KafkaConnection(bootstrap)
    binding = parse_binding(entries)
    if isinstance(binding, BindingError):
        return binding
    return connection_with(bootstrap, binding)


def connection_with(bootstrap: str, binding: KafkaBinding) -> KafkaConnection | BindingError:
    """The connection to `bootstrap` with a parsed binding. A binding naming other brokers than
    `bootstrap` (spec.kafka.bootstrapServers) is refused: which of the two is meant cannot be
    told."""
    if binding.bootstrap_servers not in (None, bootstrap):
        return BindingError(
            f"bootstrap.servers ({binding.bootstrap_servers}) differs from "
            f"spec.kafka.bootstrapServers ({bootstrap})",
            "bootstrap.servers",
        )
    return KafkaConnection(bootstrap, tuple(sorted(binding.client_config().items())))


_cache: dict[tuple[str, str], tuple[float, dict[str, bytes] | None]] = {}
_cache_lock = threading.Lock()


def secret_entries(namespace: str, name: str) -> dict[str, bytes] | None:
    """The Secret's data (None when it does not exist), cached for SECRET_TTL_SECONDS."""
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get((namespace, name))
    if cached is not None and now - cached[0] < SECRET_TTL_SECONDS:
        return cached[1]
    try:
        entries: dict[str, bytes] | None = kube.secret_data(namespace, name)
    except kube.SecretUnavailableError:
        entries = None
    with _cache_lock:
        _cache[(namespace, name)] = (now, entries)
    return entries


def read_connection(namespace: str, spec: EventConsumerSpec) -> KafkaConnection:
    """The EventConsumer's connection; raises KafkaAuthInvalidError (a user error to report)."""
    ref = spec.kafka.auth_secret_ref
    if ref is None:
        return KafkaConnection(spec.kafka.bootstrap_servers)
    entries = secret_entries(namespace, ref.name)
    if entries is None:
        raise KafkaAuthInvalidError(
            f"kafka.authSecretRef: Secret {namespace}/{ref.name} not found", None
        )
    found = connection_from(spec, entries)
    if isinstance(found, BindingError):
        raise KafkaAuthInvalidError(
            f"kafka.authSecretRef: Secret {namespace}/{ref.name}: {found.message}", found.key
        )
    return found


def resolve_connection(
    namespace: str,
    spec: EventConsumerSpec,
    report: Callable[[str, str, str], None],
    add: Callable[..., None],
) -> KafkaConnection | None:
    """The reconcile step before anything talks to Kafka: the connection, or None after
    reporting why there is none (an Event naming the key, and TopicReady=False with reason
    KafkaAuthInvalid through `add`, the Outcome's, with a retry: a fixed Secret is picked up)."""
    try:
        return read_connection(namespace, spec)
    except KafkaAuthInvalidError as error:
        report("Warning", REASON_INVALID, str(error))
        add(Condition.false(ConditionType.TOPIC_READY, REASON_INVALID, str(error)), retry=True)
        return None


def kafka_auth_refusal(namespace: str, spec: EventConsumerSpec) -> Condition | None:
    """TopicReady=False (KafkaAuthInvalid) when the Kafka Secret cannot be used, else None:
    checked before every apply of the Deployment, so that no path (reconcile, a Deployment
    event, the autoscaling loop) rolls consumers onto credentials they could not start with."""
    try:
        read_connection(namespace, spec)
    except KafkaAuthInvalidError as error:
        return Condition.false(ConditionType.TOPIC_READY, REASON_INVALID, str(error))
    return None
