"""The reconcile step of the consumers' PodDisruptionBudget: applied while
spec.podDisruptionBudget is on, deleted when it is turned off (the garbage collector takes it
with the EventConsumer). What the budget says is decided by disruption.py."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kubernetes.client.exceptions import ApiException

from eventfleet.operator import kube
from eventfleet.operator.builders import Owner
from eventfleet.operator.disruption import budget_name, build_disruption_budget
from eventfleet.operator.spec import EventConsumerSpec

log = logging.getLogger(__name__)


def reconcile_disruption_budget(
    owner: Owner, spec: EventConsumerSpec, report: Callable[[str, str, str], None]
) -> str | None:
    """Bring the budget in line with the spec; the reason to retry, or None."""
    desired = build_disruption_budget(owner, spec)
    name = budget_name(owner.name)
    try:
        if desired is None:
            if kube.delete_disruption_budget(owner.namespace, name):
                report("Normal", "DisruptionBudgetDeleted", f"deleted PodDisruptionBudget {name}")
            return None
        kube.apply_disruption_budget(desired)
    except ApiException as error:
        message = f"PodDisruptionBudget {name}: {error.reason}"
        report("Warning", "DisruptionBudgetFailed", message)
        return message
    return None
