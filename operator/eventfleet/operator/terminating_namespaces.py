"""Watch the namespaces being deleted too, so that an operator started during a namespace's
deletion still lets its EventConsumers go.

When the operator watches namespaces by name or pattern (`--namespace`), kopf decides which
namespaces to watch from their listing and watch events. A namespace being deleted whose
content is still there (the API server's `NamespaceContentRemaining` and
`NamespaceFinalizersRemaining` conditions, status True) is kept if kopf already watched it, but
never added: kopf 1.45 skips it ("termination pending"). So an operator that restarts while a
namespace is Terminating (a rollout, a node drain, a crash) never sees that namespace's
EventConsumers; their `topic-cleanup` finalizers are never released and the namespace stays
Terminating for good. `tests/integration/operator/test_restart_during_deletion.py` shows it.

`install()` wraps kopf's decision: after kopf's own, a namespace that matches a pattern and is
Terminating with content remaining is watched as well. Once its content is gone the API server
drops the conditions and deletes it, and kopf's own rule forgets it. A cluster-wide operator
(`--all-namespaces`, the manifests' default) does not use this path and is unaffected.

This reaches into kopf's private observation module: the test of the wrapper
(`tests/unit/operator/test_terminating_namespaces.py`) fails when kopf's function is renamed or
its keywords change, so an upgrade of kopf cannot drop the fix silently.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from typing import Any

from kopf._cogs.structs import references
from kopf._core.reactor import observation

_INSTALLED_MARK = "_eventfleet_keeps_terminating"


def terminating_with_content(namespace: Mapping[str, Any]) -> bool:
    """A namespace marked for deletion whose content is still being removed."""
    metadata = namespace.get("metadata") or {}
    conditions = (namespace.get("status") or {}).get("conditions") or []
    return bool(metadata.get("deletionTimestamp")) and any(
        condition.get("status") == "True" for condition in conditions
    )


def _keeping_terminating(revise: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(revise)
    def revise_namespaces(
        *,
        insights: references.Insights,
        namespaces: Collection[references.NamespacePattern],
        raw_events: Collection[Any] = (),
        raw_bodies: Collection[Any] = (),
    ) -> None:
        revise(
            insights=insights, namespaces=namespaces, raw_events=raw_events, raw_bodies=raw_bodies
        )
        objects = [event["object"] for event in raw_events if event.get("type") != "DELETED"]
        for found in [*objects, *raw_bodies]:
            name = references.NamespaceName(found["metadata"]["name"])
            matched = any(references.match_namespace(name, pattern) for pattern in namespaces)
            if matched and terminating_with_content(found):
                insights.namespaces.add(name)

    setattr(revise_namespaces, _INSTALLED_MARK, True)
    return revise_namespaces


def install() -> None:
    """Wrap kopf's namespace decision once (a second call changes nothing)."""
    current = observation.revise_namespaces
    if not getattr(current, _INSTALLED_MARK, False):
        observation.revise_namespaces = _keeping_terminating(current)
