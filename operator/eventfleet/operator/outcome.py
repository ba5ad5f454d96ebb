"""What a reconcile step hands back (an Outcome of conditions and retries) and how it reports
decisions and failures (a Report: a Kubernetes Event on the EventConsumer, and a log line)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from eventfleet.operator import kube
from eventfleet.operator.conditions import Condition

log = logging.getLogger("eventfleet.operator.reconcile")  # the steps' log, where admins look

# Report a decision or failure as a Kubernetes Event: (type "Normal"/"Warning", reason, message).
Report = Callable[[str, str, str], None]
RETRY_SECONDS: Final = 10.0


def reporter(namespace: str, name: str, uid: str) -> Report:
    """The Report of one EventConsumer: a Kubernetes Event on it, and the same in the log."""

    def report(kind: str, reason: str, message: str) -> None:
        kube.post_event(namespace, name, uid, kind=kind, reason=reason, message=message)
        (log.warning if kind == "Warning" else log.info)(
            "%s/%s %s: %s", namespace, name, reason, message
        )

    return report


@dataclass
class Outcome:
    """What one reconcile learned: conditions to merge and whether to retry soon."""

    conditions: list[Condition] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)  # why a retry is needed
    schema_version: int | None = None
    deployment: dict[str, Any] | None = None
    # Another EventConsumer writes this mode's tables in this database: this one must not run.
    sink_conflict: str | None = None

    def add(self, condition: Condition, *, retry: bool = False) -> None:
        self.conditions.append(condition)
        if retry:
            self.retry.append(f"{condition.type.value}: {condition.message}")
