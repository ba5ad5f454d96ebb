"""The EventConsumer's podTemplate merged into the consumer Deployment's pod template, pure.

What the operator sets for itself wins where the two meet: the selector and app labels (the
Deployment would lose its pods), its own annotations (checksums, Prometheus), the EVENTFLEET_*
variables (`env` wins over `envFrom` in Kubernetes, so a ConfigMap cannot override a setting
the spec decides). Security contexts are merged field by field over the locked-down defaults,
so `runAsUser: 1000` keeps `readOnlyRootFilesystem`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from eventfleet.operator.spec import PodTemplateSpec


def apply_pod_template(
    template: Mapping[str, Any], pod: PodTemplateSpec, selector: Mapping[str, str]
) -> dict[str, Any]:
    """`template` (a Deployment's spec.template as builders.py makes it) with `pod` applied;
    `selector` fills topology spread constraints that name no labelSelector."""
    merged: dict[str, Any] = copy.deepcopy(dict(template))
    metadata = merged.setdefault("metadata", {})
    metadata["labels"] = {**pod.pod_labels, **metadata.get("labels", {})}
    metadata["annotations"] = {**pod.pod_annotations, **metadata.get("annotations", {})}
    spec = merged.setdefault("spec", {})
    spec["securityContext"] = {**spec.get("securityContext", {}), **pod.security_context}
    for container in spec.get("containers", []):
        container["securityContext"] = {
            **container.get("securityContext", {}),
            **pod.container_security_context,
        }
        if pod.env_from:
            container["envFrom"] = [
                {
                    "configMapRef": {
                        "name": source.config_map_ref.name,
                        "optional": source.config_map_ref.optional,
                    },
                    **({"prefix": source.prefix} if source.prefix else {}),
                }
                for source in pod.env_from
            ]
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        spec["tolerations"] = [dict(t) for t in pod.tolerations]
    if pod.affinity:
        spec["affinity"] = copy.deepcopy(pod.affinity)
    if pod.topology_spread_constraints:
        spec["topologySpreadConstraints"] = [
            {"labelSelector": {"matchLabels": dict(selector)}, **copy.deepcopy(constraint)}
            for constraint in pod.topology_spread_constraints
        ]
    if pod.priority_class_name:
        spec["priorityClassName"] = pod.priority_class_name
    if pod.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": ref.name} for ref in pod.image_pull_secrets]
    if pod.service_account_name:
        spec["serviceAccountName"] = pod.service_account_name
    return merged
