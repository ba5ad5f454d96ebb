"""Redis as a disposable mirror of PostgreSQL, for the modes that use Redis (stats, leaderboard).

- `ops`: the values the modes describe and the mirror writes (HashSet, HashChange, ZScore).
- `resp`: a batch's values packed as RESP commands and Lua script calls (pure).
- `floors`: each full board's lowest kept score, to leave out members that cannot enter it.
- `sync`: `RedisMirror`, the protocol that keeps Redis complete (marker, stale set, resync).
"""
