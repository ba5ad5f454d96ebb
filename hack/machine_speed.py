"""How fast this (shared, virtual) machine runs Python right now: a fixed single-threaded
workload shaped like the consumers' and the gateway's (decode JSON, encode it again), timed.

The benchmarks print it beside their results because the host's speed is not constant: on the
2-core development machine the same workload has taken nearly twice as long from one half hour
to the next, and every rate a benchmark measures moves with it.
"""

from __future__ import annotations

import json
import time
from typing import Final

import orjson

REFERENCE_EVENTS: Final = 1000
ROUNDS: Final = 20


def _workload(raws: list[bytes]) -> int:
    return sum(len(json.dumps(orjson.loads(raw))) for raw in raws)


def reference_ms(repeats: int = 5) -> float:
    """The best of `repeats` timings of the reference workload, in milliseconds (lower is a
    faster machine)."""
    raws = [
        orjson.dumps(
            {
                "event_type": "match_completed",
                "player_id": f"p{n}",
                "game_id": "g",
                "timestamp": "2026-11-27T10:00:00Z",
                "data": {"score": n, "won": True},
            }
        )
        for n in range(REFERENCE_EVENTS)
    ]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(ROUNDS):
            _workload(raws)
            sum(i * i for i in range(20_000))
        best = min(best, time.perf_counter() - started)
    return best * 1000


def describe() -> str:
    return (
        f"machine speed reference: {reference_ms():.0f} ms (fixed Python workload; lower is faster)"
    )
