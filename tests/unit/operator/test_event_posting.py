"""Event posting under concurrency: reports on different objects go to the API server side by
side, and repeats of one report still make one Event with a count.

The API client is replaced by a recorder here because the property is about overlap in time,
which the real API server answers too fast to show; tests/integration/operator/
test_event_series.py checks the counts against the real API server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from eventfleet.operator import kube


class RecordingEvents:
    """create/patch of Events, each taking `seconds`, recording how many were in flight."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.created: list[str] = []
        self.patched: list[tuple[str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._guard = threading.Lock()

    def _call(self) -> None:
        with self._guard:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.seconds)
        with self._guard:
            self.in_flight -= 1

    def create_namespaced_event(self, namespace: str, event: Any) -> Any:
        self._call()
        with self._guard:
            name = f"{event.involved_object.name}.{len(self.created)}"
            self.created.append(f"{namespace}/{name}")
        return SimpleNamespace(metadata=SimpleNamespace(name=name))

    def patch_namespaced_event(self, name: str, namespace: str, patch: dict[str, Any]) -> None:
        self._call()
        with self._guard:
            self.patched.append((f"{namespace}/{name}", patch["count"]))


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingEvents]:
    recorder = RecordingEvents(seconds=0.2)
    monkeypatch.setattr(kube, "core", lambda: recorder)
    kube._series.clear()
    yield recorder
    kube._series.clear()


def _post_from_threads(objects: list[str], message: str = "created topic t") -> None:
    threads = [
        threading.Thread(
            target=kube.post_event,
            args=("ns", name, f"uid-{name}"),
            kwargs={"kind": "Normal", "reason": "TopicUpdated", "message": message},
        )
        for name in objects
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


def test_reports_on_different_objects_are_posted_side_by_side(events: RecordingEvents) -> None:
    # One lock around every API call made 500 EventConsumers' Events queue behind each other
    # (about 1,000 requests of 40-100 ms each while they were applied at once).
    _post_from_threads([f"ec-{n}" for n in range(8)])
    assert len(events.created) == 8
    assert events.most_in_flight >= 4


def test_a_report_repeated_at_once_makes_one_event_with_a_count(events: RecordingEvents) -> None:
    _post_from_threads(["same"] * 6)
    assert len(events.created) == 1
    assert [count for _name, count in events.patched] == [2, 3, 4, 5, 6]
