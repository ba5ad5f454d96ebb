"""A full rebuild of Redis from PostgreSQL that readers do not notice and replicas do not fight
over (used by sync.RedisMirror.resync).

- **Beside what readers see.** Nothing is deleted first: every key is written whole with the
  version guards of resp (a hash's row version, a board's ZADD GT), so a reader sees each key
  either as it was or as rebuilt, never missing, and a replica's newer batch written meanwhile
  is never put back. (Building a copy under other names and renaming it over the live keys would
  put back exactly those newer values: renamed keys hold the snapshot's.)
- **One replica at a time.** A lock key with a TTL (RebuildLock), extended after every chunk
  (the rebuild's heartbeat) and released at the end. A replica that finds it taken does not
  rebuild and deletes nothing: it goes on writing its batches' values, without moving the
  marker, and checks again at its next batch.
- **The marker last**, merged: each partition's offset only grows (MERGE_MARK), so a rebuild that
  read PostgreSQL's offsets before another replica's batches never moves the marker back.
  Batches move only an existing marker (MARK): after a flush it is the rebuild's to create, so
  the marker never claims values a finished rebuild did not write.
"""

from __future__ import annotations

import secrets
from typing import Final

import redis

from eventfleet.consumer.mirror.resp import pack

LOCK_PREFIX: Final = "eventfleet:rebuilding:"
# A rebuild that stops extending its lock (its process died) frees it this long after.
LOCK_TTL_MS: Final = 30_000

# KEYS: the marker; ARGV: field, value pairs. Only an existing marker moves.
MARK: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
# KEYS: the marker; ARGV: synced_at, then partition, offset pairs: each offset to the higher.
MERGE_MARK: Final = """
redis.call('HSET', KEYS[1], 'synced_at', ARGV[1])
for i = 2, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if current < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
"""
_EXTEND: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def mark_command(marker: str, marks: list[str | int]) -> str:
    """A batch's move of the marker (nothing when it is gone)."""
    return pack("EVAL", MARK, 1, marker, *marks)


def merge_mark_command(marker: str, synced_at: int, offsets: dict[str, int]) -> str:
    pairs = [v for field, offset in offsets.items() for v in (field, offset)]
    return pack("EVAL", MERGE_MARK, 1, marker, synced_at, *pairs)


class LockLostError(redis.RedisError):
    """The rebuild lock expired and may be another replica's now: this rebuild stops (what it
    wrote is harmless: every write keeps the newer value)."""


class RebuildLock:
    """The one-rebuild-at-a-time lock of one mirror (`name`: mode and sink)."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.client = client
        self.key = LOCK_PREFIX + name
        self.token: str | None = None

    def held_elsewhere(self) -> bool:
        return self.token is None and bool(self.client.exists(self.key))

    def take(self) -> bool:
        token = secrets.token_hex(8)
        if self.client.set(self.key, token, nx=True, px=LOCK_TTL_MS):
            self.token = token
            return True
        return False

    def extend(self) -> None:
        """The rebuild's heartbeat in Redis; raises LockLostError if the lock is gone."""
        if self.token is None or not self.client.eval(
            _EXTEND, 1, self.key, self.token, LOCK_TTL_MS
        ):
            self.token = None
            raise LockLostError(f"the rebuild lock {self.key} expired")

    def release(self) -> None:
        if self.token is not None:
            token, self.token = self.token, None
            self.client.eval(_RELEASE, 1, self.key, token)
