"""The operator watches a matching namespace that is being deleted with content remaining, which
kopf alone skips when it was not watching it already (operator/.../terminating_namespaces.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kopf._cogs.structs import references
from kopf._core.reactor import observation

from eventfleet.operator import terminating_namespaces


def namespace(name: str, *, deleting: bool, content_remaining: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"metadata": {"name": name}, "status": {"phase": "Active"}}
    if deleting:
        found["metadata"]["deletionTimestamp"] = "2026-12-04T21:00:00Z"
        found["status"] = {
            "phase": "Terminating",
            "conditions": [
                {
                    "type": "NamespaceFinalizersRemaining",
                    "status": "True" if content_remaining else "False",
                    "reason": "SomeFinalizersRemain",
                    "message": "Some content in the namespace has finalizers remaining",
                }
            ],
        }
    return found


@pytest.fixture
def original() -> Iterator[Any]:
    kopfs = observation.revise_namespaces
    yield kopfs
    observation.revise_namespaces = kopfs


def watched(revise: Any, bodies: list[dict[str, Any]], *, events: bool = False) -> set[Any]:
    insights = references.Insights()
    if events:
        revise(
            insights=insights,
            namespaces=["team-*"],
            raw_events=[{"type": "MODIFIED", "object": body} for body in bodies],
        )
    else:
        revise(insights=insights, namespaces=["team-*"], raw_bodies=bodies)
    return insights.namespaces


LISTING = [
    namespace("team-a", deleting=False, content_remaining=False),
    namespace("team-going", deleting=True, content_remaining=True),
    namespace("other-going", deleting=True, content_remaining=True),
]


def test_kopf_alone_skips_a_terminating_namespace_it_did_not_watch(original: Any) -> None:
    # If kopf changes this, the wrapper may no longer be needed: this test says so.
    assert watched(original, LISTING) == {"team-a"}


@pytest.mark.parametrize("source", ["listing", "watch-event"])
def test_a_matching_terminating_namespace_with_content_is_watched(
    original: Any, source: str
) -> None:
    terminating_namespaces.install()
    assert observation.revise_namespaces is not original
    events = source == "watch-event"
    assert watched(observation.revise_namespaces, LISTING, events=events) == {
        "team-a",
        "team-going",
    }


def test_install_twice_wraps_once(original: Any) -> None:
    terminating_namespaces.install()
    once = observation.revise_namespaces
    terminating_namespaces.install()
    assert observation.revise_namespaces is once
    assert once.__wrapped__ is original  # type: ignore[attr-defined]


@pytest.mark.usefixtures("original")  # restores kopf's function afterwards
def test_a_deleted_namespace_is_forgotten() -> None:
    terminating_namespaces.install()
    revise: Any = observation.revise_namespaces
    insights = references.Insights()
    going = namespace("team-going", deleting=True, content_remaining=True)
    revise(insights=insights, namespaces=["team-*"], raw_bodies=[going])
    assert insights.namespaces == {"team-going"}
    gone = namespace("team-going", deleting=True, content_remaining=False)  # its last state
    revise(
        insights=insights, namespaces=["team-*"], raw_events=[{"type": "DELETED", "object": gone}]
    )
    assert insights.namespaces == set()


def test_only_a_namespace_with_content_remaining_counts() -> None:
    assert terminating_namespaces.terminating_with_content(
        namespace("x", deleting=True, content_remaining=True)
    )
    assert not terminating_namespaces.terminating_with_content(
        namespace("x", deleting=True, content_remaining=False)
    )
    assert not terminating_namespaces.terminating_with_content(
        namespace("x", deleting=False, content_remaining=False)
    )
