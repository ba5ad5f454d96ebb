"""Pure parts of hack/podrunner.py (the local pod runner, a dev tool outside the package)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.scripts import hack_module

podrunner = hack_module("podrunner")


def wanted(ready: int, *, available: str = "True") -> dict[str, Any]:
    return {
        "observedGeneration": 3,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": 2 - ready,
        "conditions": [{"type": "Available", "status": available}],
    }


def test_a_status_whose_zero_counts_the_api_server_left_out_is_current() -> None:
    # What the API server stores for wanted(2): unavailableReplicas 0 is omitted (omitempty).
    stored = {k: v for k, v in wanted(2).items() if k != "unavailableReplicas"}
    assert podrunner.status_is_current(stored, wanted(2))


@pytest.mark.parametrize(
    "stored",
    [
        wanted(1),  # a replica more is ready now
        {k: v for k, v in wanted(2).items() if k != "readyReplicas"},  # ready read as 0
        {**wanted(2), "observedGeneration": 2},  # the spec changed since
        {**wanted(2), "conditions": [{"type": "Available", "status": "False"}]},
        {},  # never written
    ],
)
def test_a_status_that_says_something_else_is_written_again(stored: dict[str, Any]) -> None:
    assert not podrunner.status_is_current(stored, wanted(2))
