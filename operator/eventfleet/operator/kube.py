"""Kubernetes I/O for the operator (besides kopf's own watching): Secrets, Deployments,
EventConsumer status and Events.

Thin wrappers with one error vocabulary: SecretUnavailableError for a Secret or key that is missing
(a user error, reported as a condition), and the client's ApiException for everything else.
Secret values are returned to the caller only; they are never logged or put in an error message.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from eventfleet.operator import metrics
from eventfleet.operator.builders import FIELD_MANAGER
from eventfleet.operator.spec import GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)


class SecretUnavailableError(Exception):
    """The referenced Secret or key does not exist (the message names them, not the value)."""


SERVICE_ACCOUNT_TOKEN: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

CredentialSource = Literal["kubeconfig", "in-cluster"]


def credential_source(environ: Mapping[str, str], *, in_cluster: bool) -> CredentialSource:
    """Which credentials to use, by kubectl's rule: an explicit KUBECONFIG always wins; inside a
    pod (service host set and a token mounted) the pod's service account; else ~/.kube/config.

    Trying the service account first (what kopf and the client library do by default) would make
    an operator started by hand with KUBECONFIG inside some pod talk to that pod's cluster.
    """
    if environ.get("KUBECONFIG"):
        return "kubeconfig"
    if in_cluster and environ.get("KUBERNETES_SERVICE_HOST"):
        return "in-cluster"
    return "kubeconfig"


@functools.cache
def load_credentials() -> client.Configuration:
    """Load the credentials once (by `credential_source`) into the client's default
    configuration, and return a copy of it."""
    source = credential_source(os.environ, in_cluster=SERVICE_ACCOUNT_TOKEN.exists())
    if source == "in-cluster":
        config.load_incluster_config()
    else:
        config.load_kube_config()
    configuration: client.Configuration = client.Configuration.get_default_copy()
    log.info("Kubernetes API %s (credentials: %s)", configuration.host, source)
    return configuration


# Threads that call the API at once: kopf's executor (handlers.EXECUTOR_THREADS) and the
# autoscaling loop's workers, with room to spare. The client's default pool of 10 connections
# made the rest open a new connection (and TLS handshake) for each request, and drop it.
CONNECTION_POOL_SIZE: Final = 32


@functools.cache
def _api() -> client.ApiClient:
    configuration = load_credentials()
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return client.ApiClient(configuration)


def core() -> client.CoreV1Api:
    return client.CoreV1Api(_api())


def coordination() -> client.CoordinationV1Api:
    return client.CoordinationV1Api(_api())


def apps() -> client.AppsV1Api:
    return client.AppsV1Api(_api())


def _secret_items(namespace: str, name: str) -> dict[str, Any]:
    """A Secret's keys and their base64 values; SecretUnavailableError when it does not exist."""
    try:
        secret = core().read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            raise SecretUnavailableError(f"Secret {namespace}/{name} not found") from None
        raise
    data: dict[str, Any] = secret.data or {}
    return data


def secret_value(namespace: str, name: str, key: str) -> str:
    data = _secret_items(namespace, name)
    if key not in data:
        raise SecretUnavailableError(f"Secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(data[key]).decode("utf-8")


def secret_data(namespace: str, name: str) -> dict[str, bytes]:
    """Every key of a Secret, decoded; SecretUnavailableError when it does not exist."""
    return {key: base64.b64decode(value) for key, value in _secret_items(namespace, name).items()}


# The arguments of a server-side apply as the operator's field manager, forced: fields the operator
# owns are set back if someone edited them.
SERVER_SIDE_APPLY: Final[dict[str, Any]] = {
    "field_manager": FIELD_MANAGER,
    "force": True,
    "_content_type": "application/apply-patch+yaml",
}


def apply(body: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply of a Deployment: fields the operator owns are set back if edited."""
    result = apps().patch_namespaced_deployment(
        body["metadata"]["name"], body["metadata"]["namespace"], body, **SERVER_SIDE_APPLY
    )
    applied: dict[str, Any] = _api().sanitize_for_serialization(result)
    return applied


def policy() -> client.PolicyV1Api:
    return client.PolicyV1Api(_api())


def apply_disruption_budget(body: dict[str, Any]) -> None:
    """Server-side apply of a PodDisruptionBudget."""
    policy().patch_namespaced_pod_disruption_budget(
        body["metadata"]["name"], body["metadata"]["namespace"], body, **SERVER_SIDE_APPLY
    )


def delete_disruption_budget(namespace: str, name: str) -> bool:
    """Delete a PodDisruptionBudget; False when there was none."""
    try:
        policy().delete_namespaced_pod_disruption_budget(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def read_deployment(namespace: str, name: str) -> dict[str, Any] | None:
    metrics.API_READS.labels("deployments").inc()
    try:
        result = apps().read_namespaced_deployment(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    found: dict[str, Any] = _api().sanitize_for_serialization(result)
    return found


# ---------------------------------------------------------------------------------------------
# EventConsumers: status written under a per-object lock from a fresh read, so that the
# reconcile handler, the autoscaling loop and Deployment events never overwrite each other's
# conditions (a merge patch replaces the whole conditions list).

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def consumer_lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


def forget_consumer(namespace: str, name: str) -> None:
    with _locks_guard:
        _locks.pop((namespace, name), None)


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(_api())


def get_consumer(namespace: str, name: str) -> dict[str, Any] | None:
    metrics.API_READS.labels("eventconsumers").inc()
    try:
        found: dict[str, Any] = custom().get_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return found


def update_consumer_status(
    namespace: str,
    name: str,
    compute: Callable[[dict[str, Any]], dict[str, Any] | None],
    *,
    seen: Mapping[str, Any] | None = None,
) -> bool:
    """Read the EventConsumer, let `compute` turn its current status into a status patch (or
    None for nothing to do), and write it; all under the object's lock. With `seen` (the
    status as the watch last delivered it), nothing is read when `compute` finds nothing to
    change in that: most passes of the autoscaling loop. A `seen` behind a write that the watch
    has not delivered yet only delays this update to the next pass. True when it wrote."""
    with consumer_lock(namespace, name):
        if seen is not None and not compute(dict(seen)):
            return False
        current = get_consumer(namespace, name)
        if current is None or current.get("metadata", {}).get("deletionTimestamp"):
            return False
        update = compute(current.get("status") or {})
        if not update:
            return False
        try:
            custom().patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": update}
            )
        except ApiException as error:
            if error.status != 404:
                raise
            return False
        return True


# Repeats of one report on one object raise the count of its Event, as the kubelet and the
# controllers do (kubectl describe: "x12 over 60s"), instead of a new Event per poll. Keyed by
# what makes two reports the same; the oldest series are forgotten first, and a series whose
# Event expired (the API server drops Events after an hour) starts a new one.
SeriesKey = tuple[str, str, str, str, str]  # namespace, uid, type, reason, message
_SERIES_KEPT: Final = 4096
_series: OrderedDict[SeriesKey, tuple[str, int]] = OrderedDict()  # -> (Event name, count)
_series_guard = threading.Lock()  # the map only, never held across a request
# One lock per stripe of series keys, held across the request: a repeat of one report waits for
# its first post (so it raises that Event's count instead of making a second one), while reports
# on other objects are posted side by side. One lock for all had queued the 1,000 Events of 500
# EventConsumers applied at once behind each other, at 40-100 ms a request.
_SERIES_STRIPES: Final = 64
_series_posting = tuple(threading.Lock() for _ in range(_SERIES_STRIPES))


def post_event(
    namespace: str, name: str, uid: str, *, kind: str, reason: str, message: str
) -> None:
    """A Kubernetes Event on an EventConsumer (kubectl describe ec, kubectl get events); a repeat
    of the same report raises the count of the Event already posted."""
    message = message[:1024]
    key: SeriesKey = (namespace, uid, kind, reason, message)
    try:
        with _series_posting[hash(key) % _SERIES_STRIPES]:
            with _series_guard:
                known = _series.get(key)
            if known is not None and _count_again(namespace, *known):
                with _series_guard:
                    _series[key] = (known[0], known[1] + 1)
                    _series.move_to_end(key)
                return
            created = core().create_namespaced_event(
                namespace,
                _new_event(namespace, name, uid, kind=kind, reason=reason, message=message),
            )
            with _series_guard:
                _series[key] = (str(created.metadata.name), 1)
                while len(_series) > _SERIES_KEPT:
                    _series.popitem(last=False)
    except ApiException as error:  # an event is best effort: never fail a reconcile for it
        log.warning("could not post event %s on %s/%s: %s", reason, namespace, name, error.reason)


def _count_again(namespace: str, event_name: str, count: int) -> bool:
    """Raise the count of a posted Event; False when it is gone (expired or deleted)."""
    patch = {"count": count + 1, "lastTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        core().patch_namespaced_event(event_name, namespace, patch)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _new_event(
    namespace: str, name: str, uid: str, *, kind: str, reason: str, message: str
) -> client.CoreV1Event:
    now = datetime.now(UTC)
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{name}.", namespace=namespace),
        involved_object=client.V1ObjectReference(
            api_version=f"{GROUP}/{VERSION}", kind=KIND, name=name, namespace=namespace, uid=uid
        ),
        reason=reason,
        message=message,
        type=kind,
        source=client.V1EventSource(component=FIELD_MANAGER),
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        reporting_component=FIELD_MANAGER,
        reporting_instance=FIELD_MANAGER,
    )
