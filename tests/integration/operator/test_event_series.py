"""Repeated Events aggregate: the same reason and message on the same EventConsumer raise the
count of one Event (as kubectl describe shows "x10 over 50s") instead of posting a new one each
poll."""

from __future__ import annotations

import pytest

from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import Cluster, create_topic_conflict

pytestmark = pytest.mark.usefixtures("operator", "podrunner")


def test_ten_polls_in_conflict_make_one_event_with_a_rising_count(
    cluster: Cluster, stack: Stack, topic_name: str
) -> None:
    create_topic_conflict(cluster, stack, topic_name)

    def conflict_events() -> list[tuple[str, int]]:
        found = cluster.core.list_namespaced_event(
            cluster.namespace, field_selector="involvedObject.name=first"
        )
        return [
            (str(e.message), e.count or 1) for e in found.items if e.reason == "ResourceConflict"
        ]

    # pollIntervalSeconds is 5: ten polls of the first one find the conflict in about 50 s.
    wait_for(
        lambda: sum(count for _, count in conflict_events()) >= 10,
        timeout=120,
        what="ten ResourceConflict reports on the first EventConsumer",
    )
    events = conflict_events()
    assert len(events) == 1, events
    assert events[0][1] >= 10
