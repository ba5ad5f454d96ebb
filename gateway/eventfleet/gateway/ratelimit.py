"""Token-bucket rate limiting per client (API key or IP). Pure: time is passed in.

Each client's bucket holds up to `burst` tokens and refills at `rate` per second; a request
takes one. The table of buckets is bounded: past `max_clients` the least recently seen client is
forgotten (it comes back with a full bucket), so a flood of spoofed keys cannot exhaust memory.

Each worker process keeps its own buckets, with its share of the configured rate and burst
(`worker_share`): the kernel spreads connections evenly over the workers (SO_REUSEPORT), so a
client fast enough to meet the limit, on several connections, meets it at about the configured
rate in total. Why not one table in shared memory: every request would take a cross-process lock
(one dead worker holding it stalls the others), for a limit that is per pod anyway (each
replica behind the Service keeps its own). The price: a client on ONE keep-alive connection
reaches one worker only, so it is held to rate / workers.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_seconds: int = 0  # whole seconds until a token is back (for Retry-After)


def worker_share(rate: float, burst: int, workers: int) -> tuple[float, int]:
    """One worker's rate and burst, so that all workers together allow the configured ones."""
    return rate / workers, max(1, math.ceil(burst / workers))


class TokenBuckets:
    def __init__(self, rate: float, burst: int, max_clients: int = 100_000) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be > 0, burst and max_clients >= 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float, cost: float = 1.0) -> Decision:
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if allowed:
            return Decision(allowed=True)
        wait = (cost - tokens) / self.rate
        return Decision(allowed=False, retry_after_seconds=max(1, math.ceil(wait)))
