"""Days that end at midnight in the configured timezone (so spend keys carry the local date)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Periods:
    """`day(now)` names the current period; `reset_at(now)` is when it ends."""

    def __init__(self, timezone: str = "UTC", clock: Clock = utcnow) -> None:
        self.tz = ZoneInfo(timezone)
        self.clock = clock

    def now(self) -> dt.datetime:
        now = self.clock()
        if now.tzinfo is None:  # a naive clock is taken as UTC
            now = now.replace(tzinfo=dt.UTC)
        return now.astimezone(self.tz)

    def day(self) -> str:
        return self.now().date().isoformat()

    def reset_at(self) -> dt.datetime:
        now = self.now()
        nxt = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0), tzinfo=self.tz)
        return nxt

    def seconds_to_reset(self) -> float:
        return max(1.0, (self.reset_at() - self.now()).total_seconds())
