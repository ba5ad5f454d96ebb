"""eventfleet from `manifests/` on the stack's node: a kustomize overlay that changes only what
this node needs, so that the e2e and the demo deploy what a user deploys.

Standard library only (the demo and the tests both use it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .common import REPO

SYSTEM_NAMESPACE = "eventfleet-system"


def from_pod(url: str, node_address: str) -> str:
    """A loopback URL or DSN of the stack as a pod reaches it: the bridge's address, the same
    port (the pod network's forwarder listens there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(host, node_address, 1)))


def overlay(
    *,
    image: str,
    node_address: str,
    apiserver_port: int,
    kafka_bootstrap: str,
    gateway_topic: str,
    workdir: Path,
    watch: list[str],
) -> str:
    """The kustomization.yaml, to be written in `workdir`: the local image; the operator
    watching `watch` (its flags) and finding the API server at the bridge's address (the node
    has no kube-proxy for the `kubernetes` Service); the gateway pointed at the stack's Kafka
    and topic, one replica with a CPU request that fits two cores."""
    name, tag = image.rsplit(":", 1)
    operator_patch: list[Any] = [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/args",
            "value": ["operator", *watch, "--leader-elect", "--default-image", image],
        },
        *(
            {
                "op": "add",
                "path": "/spec/template/spec/containers/0/env/-",
                "value": {"name": key, "value": value},
            }
            for key, value in (
                ("KUBERNETES_SERVICE_HOST", node_address),
                ("KUBERNETES_SERVICE_PORT", str(apiserver_port)),
            )
        ),
    ]
    gateway_patch: list[Any] = [
        {"op": "replace", "path": "/spec/replicas", "value": 1},
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/resources/requests/cpu",
            "value": "100m",
        },
    ]
    settings_patch: list[Any] = [
        {
            "op": "replace",
            "path": "/data/EVENTFLEET_GATEWAY_KAFKA_BOOTSTRAP",
            "value": kafka_bootstrap,
        },
        {"op": "replace", "path": "/data/EVENTFLEET_GATEWAY_TOPIC", "value": gateway_topic},
        {"op": "replace", "path": "/data/EVENTFLEET_GATEWAY_WORKERS", "value": "1"},
    ]

    def patch(kind: str, target: str, ops: list[Any]) -> str:
        # JSON is YAML: one line per patch, no quoting to get wrong.
        target_line = json.dumps({"kind": kind, "name": target})
        return f"  - target: {target_line}\n    patch: {json.dumps(json.dumps(ops))}\n"

    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        # kustomize takes a base by a relative path only.
        f"resources: [{os.path.relpath(REPO / 'manifests', workdir)}]\n"
        f"images: [{json.dumps({'name': 'eventfleet', 'newName': name, 'newTag': tag})}]\n"
        "patches:\n"
        + patch("Deployment", "eventfleet-operator", operator_patch)
        + patch("Deployment", "eventfleet-gateway", gateway_patch)
        + patch("ConfigMap", "eventfleet-gateway-settings", settings_patch)
    )
