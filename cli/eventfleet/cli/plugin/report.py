"""`kubectl eventfleet report`: a tarball for a bug report. What it holds (each file JSON, with
managedFields dropped and every text through `redact`): the EventConsumers, their Events, the
Deployments and pods they own, and the operator's logs where its pods can be found. It never
reads a Secret. `README.txt` inside lists what was collected and what could not be."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from eventfleet.cli.plugin.cluster import Cluster
from eventfleet.cli.plugin.redact import redact
from eventfleet.operator.builders import MANAGED_BY

OPERATOR_SELECTOR: Final = "app.kubernetes.io/name=eventfleet-operator"
LOG_LINES: Final = 5000
OWNED: Final = f"app.kubernetes.io/managed-by={MANAGED_BY}"


def _plain(value: Any) -> Any:
    plain = client.ApiClient().sanitize_for_serialization(value)
    if isinstance(plain, dict):
        plain.get("metadata", {}).pop("managedFields", None)
        for item in plain.get("items", []) or []:
            if isinstance(item, dict):
                item.get("metadata", {}).pop("managedFields", None)
    return plain


class Report:
    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.notes: list[str] = []

    def add(self, name: str, read: Callable[[], Any]) -> None:
        try:
            value = read()
        except ApiException as error:
            self.notes.append(f"{name}: not collected ({error.status} {error.reason})")
            return
        text = value if isinstance(value, str) else json.dumps(_plain(value), indent=2, default=str)
        self.files[name] = redact(text)
        self.notes.append(f"{name}: collected")

    def tarball(self) -> bytes:
        buffer = io.BytesIO()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        readme = f"eventfleet report, {created}\n\n" + "\n".join(self.notes) + "\n"
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, text in {"README.txt": readme, **self.files}.items():
                data = text.encode()
                info = tarfile.TarInfo(f"eventfleet-report/{name}")
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def collect(cluster: Cluster, *, all_namespaces: bool) -> Report:
    report = Report()
    resources = cluster.eventconsumers(all_namespaces=all_namespaces)
    report.add("eventconsumers.json", lambda: {"items": resources})
    namespaces = sorted({r["metadata"]["namespace"] for r in resources} or {cluster.namespace})
    core, apps = cluster.core, cluster.apps
    for namespace in namespaces:
        report.add(f"{namespace}/events.json", partial(core.list_namespaced_event, namespace))
        report.add(
            f"{namespace}/deployments.json",
            partial(apps.list_namespaced_deployment, namespace, label_selector=OWNED),
        )
        report.add(
            f"{namespace}/pods.json",
            partial(core.list_namespaced_pod, namespace, label_selector=OWNED),
        )
    try:
        operators = core.list_pod_for_all_namespaces(label_selector=OPERATOR_SELECTOR).items
    except ApiException as error:
        report.notes.append(f"operator logs: pods not listable ({error.status} {error.reason})")
        operators = []
    if not operators:
        report.notes.append(f"operator logs: no pod with {OPERATOR_SELECTOR} found")
    for pod in operators:
        namespace, name = str(pod.metadata.namespace), str(pod.metadata.name)  # type: ignore[union-attr]
        report.add(
            f"operator-logs/{namespace}/{name}.log",
            partial(core.read_namespaced_pod_log, name, namespace, tail_lines=LOG_LINES),
        )
    return report
