"""The plugin's reads and patches, with the user's own credentials and RBAC (kubeconfig, as
kubectl itself; `--context` picks another context). Errors are the client's ApiException; the
callers turn them into readable lines."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import psycopg2
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from eventfleet.cli.plugin.view import DlqRate, Pod, Unreadable
from eventfleet.contract.kafka_binding import BindingError, load_binding
from eventfleet.operator import kafka_admin
from eventfleet.operator.kafka_auth import KafkaConnection, connection_of, connection_with
from eventfleet.operator.scaling import PartitionOffsets

GROUP, VERSION, PLURAL = "eventfleet.dev", "v1alpha1", "eventconsumers"
CONNECT_SECONDS: Final = 5
DLQ_RATE: Final = """
SELECT reason, count(*), count(*) FILTER (WHERE failed_at >= now() - interval '1 hour')
FROM dlq_events WHERE consumer_group = %s AND failed_at >= now() - interval '1 day'
GROUP BY reason
"""


class NotFoundError(Exception):
    pass


def connect(context: str | None) -> tuple[client.ApiClient, str]:
    """An API client and the context's namespace (default: `default`)."""
    config.load_kube_config(context=context)
    _, active = config.list_kube_config_contexts()
    if context is not None:
        contexts, _ = config.list_kube_config_contexts()
        active = next(c for c in contexts if c["name"] == context)
    namespace = active.get("context", {}).get("namespace") or "default"
    return client.ApiClient(), namespace


class Cluster:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.namespace = namespace

    def eventconsumer(self, name: str) -> dict[str, Any]:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                raise NotFoundError(f"no EventConsumer {self.namespace}/{name}") from None
            raise
        return found

    def eventconsumers(self, *, all_namespaces: bool) -> list[dict[str, Any]]:
        if all_namespaces:
            listed = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listed = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL
            )
        items: list[dict[str, Any]] = listed["items"]  # type: ignore[index]
        return items

    def patch_spec(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        self.eventconsumer(name)  # a readable error for a wrong name
        patched: dict[str, Any] = self.custom.patch_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )
        return patched

    def events_of(self, uid: str) -> list[dict[str, Any]]:
        listed = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.uid={uid}"
        )
        return [client.ApiClient().sanitize_for_serialization(e) for e in listed.items]

    def pods(self, selector: str | None) -> list[Pod] | Unreadable:
        if not selector:
            return Unreadable("the status has no selector yet")
        try:
            listed = self.core.list_namespaced_pod(self.namespace, label_selector=selector)
        except ApiException as error:
            return Unreadable(f"listing pods: {error.status} {error.reason}")
        pods = []
        for item in listed.items:
            pod: dict[str, Any] = client.ApiClient().sanitize_for_serialization(item)
            state, spec = pod.get("status", {}), pod.get("spec", {})
            statuses = state.get("containerStatuses", [])
            started = state.get("startTime")
            ready = sum(1 for s in statuses if s.get("ready"))
            pods.append(
                Pod(
                    name=pod["metadata"]["name"],
                    phase=state.get("phase", "Unknown"),
                    ready=f"{ready}/{len(spec.get('containers', []))}",
                    restarts=sum(s.get("restartCount", 0) for s in statuses),
                    started=datetime.fromisoformat(started.replace("Z", "+00:00"))
                    if started
                    else None,
                    node=spec.get("nodeName", "-"),
                )
            )
        return pods

    def secret_entries(self, name: str) -> dict[str, bytes]:
        """A Secret's data (get, never list: the user needs only `get` on that Secret)."""
        try:
            secret = self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as error:
            if error.status in (403, 404):
                raise NotFoundError(
                    f"cannot read Secret {self.namespace}/{name}: {error.status} {error.reason}"
                ) from None
            raise
        return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}

    def secret_value(self, name: str, key: str) -> str:
        """One key of a Secret."""
        data = self.secret_entries(name)
        if key not in data:
            raise NotFoundError(f"Secret {self.namespace}/{name} has no key {key!r}")
        return data[key].decode()

    def kafka_connection(
        self, resource: Mapping[str, Any], binding: Path | None = None
    ) -> KafkaConnection | Unreadable:
        """How to reach the EventConsumer's Kafka: with the binding file or directory given
        (--kafka-auth), else with its kafka.authSecretRef Secret, read with the user's RBAC."""
        kafka = resource.get("spec", {}).get("kafka", {})
        bootstrap = kafka.get("bootstrapServers", "")
        if binding is not None:
            loaded = load_binding(binding)
            found = (
                loaded if isinstance(loaded, BindingError) else connection_with(bootstrap, loaded)
            )
            where = str(binding)
        elif (ref := kafka.get("authSecretRef")) is not None:
            where = f"Secret {self.namespace}/{ref['name']}"
            try:
                found = connection_of(bootstrap, self.secret_entries(ref["name"]))
            except NotFoundError as error:
                return Unreadable(f"Kafka: {error} (or give --kafka-auth PATH, a binding)")
        else:
            return KafkaConnection(bootstrap)
        if isinstance(found, BindingError):
            return Unreadable(f"Kafka: {where}: {found.message}")
        return found

    def postgres_dsn(self, resource: Mapping[str, Any]) -> str:
        ref = resource["spec"]["postgres"]["dsnSecretRef"]
        return self.secret_value(ref["name"], ref["key"])


def partitions(
    resource: Mapping[str, Any], connection: KafkaConnection | Unreadable
) -> list[PartitionOffsets] | Unreadable:
    spec, status = resource.get("spec", {}), resource.get("status", {})
    group = status.get("consumerGroup")
    if not group:
        return Unreadable("the status names no consumer group yet")
    if isinstance(connection, Unreadable):
        return connection
    try:
        return kafka_admin.group_offsets(connection, spec["kafka"]["topic"], group)
    except (kafka_admin.KafkaUnavailableError, kafka_admin.TopicMissingError) as error:
        return Unreadable(f"Kafka: {error}")


def dlq_rate(dsn: str, group: str) -> DlqRate | Unreadable:
    try:
        connection = psycopg2.connect(dsn, connect_timeout=CONNECT_SECONDS)
    except psycopg2.Error as error:
        return Unreadable(f"PostgreSQL: {str(error).strip().splitlines()[0]}")
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(DLQ_RATE, (group,))
            found = cursor.fetchall()
    except psycopg2.Error as error:
        return Unreadable(f"PostgreSQL: {str(error).strip().splitlines()[0]}")
    finally:
        connection.close()
    return DlqRate(
        last_hour=sum(hour for _, _, hour in found),
        last_day=sum(day for _, day, _ in found),
        by_reason={reason: day for reason, day, _ in found},
    )
