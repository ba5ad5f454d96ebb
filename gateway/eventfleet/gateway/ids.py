"""Time-ordered event ids: UUID version 7 (RFC 9562), which Python 3.11's uuid module lacks.

48 bits of Unix milliseconds, then a 12-bit counter that keeps ids from one process strictly
increasing within a millisecond (RFC 9562 section 6.2, method 1), then 62 random bits from the
OS's CSPRNG. Ids sort by creation time, so the logger's index on event_id stays append-mostly.

One generator serves one event loop (each worker process has its own): no lock. The text form
is built directly (the gateway needs only that), about 5x faster than a uuid.UUID and str().
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Final

_RANDOM_POOL_BYTES: Final = 8 * 1024
_TAIL_MASK: Final = (1 << 62) - 1
_FIXED_BITS: Final = (0x7 << 76) | (0b10 << 62)  # version 7, RFC 9562 variant


class UUID7Generator:
    def __init__(
        self,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock_ms = clock_ms
        self._random = random_bytes
        self._pool = ""  # random bits as hex text, 16 digits (64 bits) an id
        self._offset = 0
        self._last_ms = -1
        self._counter = 0
        self._prefix = ""  # the text of the millisecond in _last_ms, with the version digit

    def _tick(self) -> int:
        """The id's millisecond; counts on within one (RFC 9562 section 6.2, method 1)."""
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
        if ms != self._last_ms:
            digits = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
            self._prefix = f"{digits[:8]}-{digits[8:]}-7"
            self._last_ms = ms
        return ms

    def _random_hex(self) -> str:
        if self._offset >= len(self._pool):
            self._pool = self._random(_RANDOM_POOL_BYTES).hex()
            self._offset = 0
        start = self._offset
        self._offset = start + 16
        return self._pool[start : start + 16]

    def value(self) -> int:
        ms = self._tick()
        tail = int(self._random_hex(), 16) & _TAIL_MASK
        return ((ms & 0xFFFF_FFFF_FFFF) << 80) | _FIXED_BITS | (self._counter << 64) | tail

    def text(self) -> str:
        # Straight to text (what the gateway needs): the millisecond's part is formatted once
        # per millisecond, the random part is sliced from hex text; ~3x faster than formatting
        # value(). The variant's two bits replace the top two of the 64 random ones, as there.
        self._tick()
        tail = self._random_hex()
        return f"{self._prefix}{self._counter:03x}-{_VARIANT[tail[0]]}{tail[1:4]}-{tail[4:]}"

    def __call__(self) -> uuid.UUID:
        return uuid.UUID(int=self.value())


# The first hex digit of the random part with its top two bits set to the variant's 0b10.
_VARIANT: Final = {f"{n:x}": f"{0b1000 | (n & 0b11):x}" for n in range(16)}


def uuid7_milliseconds(value: uuid.UUID) -> int:
    """The Unix milliseconds an UUIDv7 carries."""
    return value.int >> 80


_generator = UUID7Generator()
new_event_id = _generator
new_event_id_text = _generator.text
