"""Pure parts of hack/podrunner.py (the local pod runner, a dev tool outside the package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_podrunner_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hack_podrunner", REPO / "hack" / "podrunner.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


podrunner = _load_podrunner_module()


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
