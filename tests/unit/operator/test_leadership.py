"""The leader-election decision (pure): who may write the Lease, and when."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventfleet.operator.leadership import Observed, next_step


@pytest.mark.parametrize(
    ("observed", "unchanged_for", "step"),
    [
        (None, 0.0, "create"),
        (Observed("me", 15), 100.0, "renew"),
        (Observed("", 15), 0.0, "take"),  # released at a normal stop
        (Observed("other", 15), 14.9, "wait"),
        (Observed("other", 15), 15.0, "take"),  # silent for the whole lease duration
    ],
)
def test_next_step(observed: Observed | None, unchanged_for: float, step: str) -> None:
    assert next_step(observed, "me", unchanged_for) == step


@given(holder=st.text(min_size=1), duration=st.integers(1, 3600), silent=st.floats(0, 1e6))
def test_a_live_holder_is_never_displaced(holder: str, duration: int, silent: float) -> None:
    """Another replica's Lease is taken only after a silence of its whole duration."""
    step = next_step(Observed(holder, duration), "me" if holder != "me" else "you", silent)
    assert (step == "take") == (silent >= duration)
