"""The three modes behind one interface (`base.Mode`); `build(settings)` picks one."""

from __future__ import annotations

from eventfleet.consumer.modes.base import Mode
from eventfleet.consumer.settings import ConsumerSettings


def build(settings: ConsumerSettings) -> Mode:
    # Imported here: each mode is small, but a process only ever needs one.
    if settings.mode == "logger":
        from eventfleet.consumer.modes.logger import LoggerMode  # noqa: PLC0415

        return LoggerMode(settings)
    if settings.mode == "stats":
        from eventfleet.consumer.modes.stats import StatsMode  # noqa: PLC0415

        return StatsMode(settings)
    from eventfleet.consumer.modes.leaderboard import LeaderboardMode  # noqa: PLC0415

    return LeaderboardMode(settings)


__all__ = ["Mode", "build"]
