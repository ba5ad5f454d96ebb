"""Reconcile, the autoscaling loop and the topic deletion never interleave on one object.

The race this guards against was seen: a pass of the loop read the spec, the deletion handler
deleted the topic, and the pass then found the topic missing and created it again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from eventfleet.operator import autoscaler, registry
from eventfleet.operator.registry import Known, ObjectLocks


def test_one_object_is_held_by_one_caller_at_a_time() -> None:
    locks = ObjectLocks()
    order: list[str] = []
    first_inside = threading.Event()

    def first() -> None:
        with locks.hold(("ns", "a")):
            order.append("first in")
            first_inside.set()
            time.sleep(0.2)
            order.append("first out")

    def second() -> None:
        first_inside.wait(5)
        with locks.hold(("ns", "a")):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert order == ["first in", "first out", "second in"]
    assert len(locks) == 0  # nothing kept once nobody holds or awaits a lock


def test_different_objects_do_not_wait_for_each_other() -> None:
    locks = ObjectLocks()
    with locks.hold(("ns", "a")):
        entered = threading.Event()

        def other() -> None:
            with locks.hold(("ns", "b")):
                entered.set()

        thread = threading.Thread(target=other)
        thread.start()
        assert entered.wait(2)
        thread.join(2)
        assert len(locks) == 1


def test_the_lock_is_released_when_the_holder_raises() -> None:
    locks = ObjectLocks()
    with pytest.raises(RuntimeError), locks.hold(("ns", "a")):
        raise RuntimeError("boom")
    assert len(locks) == 0
    with locks.hold(("ns", "a")):  # would hang if the lock had stayed taken
        pass


def test_a_pass_for_an_object_deleted_meanwhile_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passes: list[tuple[str, str]] = []
    monkeypatch.setattr(autoscaler, "autoscale", lambda ns, name, _entry: passes.append((ns, name)))
    key = ("ns", "gone")
    stale = Known(uid="old", spec={})
    current = Known(uid="new", spec={})
    known: dict[tuple[str, str], Any] = {key: current}
    monkeypatch.setattr(registry, "_known", known)

    autoscaler._autoscale_safely(key, stale)  # deleted and created again since it was read
    assert passes == []
    known.clear()
    autoscaler._autoscale_safely(key, current)  # deleted since it was read
    assert passes == []
    known[key] = current
    autoscaler._autoscale_safely(key, current)
    assert passes == [key]
