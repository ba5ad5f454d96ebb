"""Kubernetes I/O for the operator (besides kopf's own watching): Secrets, Deployments.

Thin wrappers with one error vocabulary: SecretUnavailableError for a Secret or key that is missing
(a user error, reported as a condition), and the client's ApiException for everything else.
Secret values are returned to the caller only; they are never logged or put in an error message.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from eventfleet.operator.builders import FIELD_MANAGER
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


class SecretUnavailableError(Exception):
    """The referenced Secret or key does not exist (the message names them, not the value)."""


@functools.cache
def _api() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def core() -> client.CoreV1Api:
    return client.CoreV1Api(_api())


def apps() -> client.AppsV1Api:
    return client.AppsV1Api(_api())


def secret_value(namespace: str, name: str, key: str) -> str:
    try:
        secret = core().read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            raise SecretUnavailableError(f"Secret {namespace}/{name} not found") from None
        raise
    data: dict[str, Any] = secret.data or {}
    if key not in data:
        raise SecretUnavailableError(f"Secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(data[key]).decode("utf-8")


def apply(body: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply of a Deployment: fields the operator owns are set back if edited."""
    result = apps().patch_namespaced_deployment(
        body["metadata"]["name"],
        body["metadata"]["namespace"],
        body,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    applied: dict[str, Any] = _api().sanitize_for_serialization(result)
    return applied


def read_deployment(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        result = apps().read_namespaced_deployment(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    found: dict[str, Any] = _api().sanitize_for_serialization(result)
    return found
