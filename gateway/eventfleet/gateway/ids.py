"""Time-ordered event ids: UUID version 7 (RFC 9562), which Python 3.11's uuid module lacks.

48 bits of Unix milliseconds, then a 12-bit counter that keeps ids from one process strictly
increasing within a millisecond (RFC 9562 section 6.2, method 1), then 62 random bits. Ids sort
by creation time, so the logger's index on event_id stays append-mostly.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable


class UUID7Generator:
    def __init__(
        self,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock_ms = clock_ms
        self._random = random_bytes
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def __call__(self) -> uuid.UUID:
        with self._lock:
            ms = self._clock_ms()
            if ms <= self._last_ms:
                # Same millisecond (or the clock went back): count on from the last id.
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                    ms += 1
                    self._counter = 0
            else:
                self._counter = 0
            self._last_ms = ms
            counter = self._counter
        tail = int.from_bytes(self._random(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76  # version
        value |= counter << 64
        value |= 0b10 << 62  # variant (RFC 9562)
        value |= tail
        return uuid.UUID(int=value)


def uuid7_milliseconds(value: uuid.UUID) -> int:
    """The Unix milliseconds an UUIDv7 carries."""
    return value.int >> 80


new_event_id = UUID7Generator()
