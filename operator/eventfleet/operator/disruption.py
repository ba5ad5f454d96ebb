"""The consumers' PodDisruptionBudget, pure: a node drain or a cluster upgrade takes at most
`maxUnavailable` consumers at a time, so a fleet never loses all its readers at once.

maxUnavailable rather than minAvailable: with one replica (or zero, scaled to zero) a
minAvailable budget would block every drain of that node forever.
"""

from __future__ import annotations

from typing import Any

from eventfleet.operator.builders import Owner, consumer_labels, deployment_name, selector_labels
from eventfleet.operator.spec import EventConsumerSpec


def budget_name(owner_name: str) -> str:
    """Named like the Deployment whose pods it guards."""
    return deployment_name(owner_name)


def build_disruption_budget(owner: Owner, spec: EventConsumerSpec) -> dict[str, Any] | None:
    """The PodDisruptionBudget of one EventConsumer, or None when spec.podDisruptionBudget is
    off (an existing one is then deleted)."""
    if not spec.disruption_budget.enabled:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": budget_name(owner.name),
            "namespace": owner.namespace,
            "labels": consumer_labels(owner, spec.mode),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "maxUnavailable": spec.disruption_budget.max_unavailable,
            "selector": {"matchLabels": selector_labels(owner)},
        },
    }
