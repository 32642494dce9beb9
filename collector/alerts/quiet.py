"""Quiet hours: a daily clock range (it may wrap midnight) when mails are held."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from collector.alerts.settings import parse_clock_range


class QuietHours:
    """``22:00-07:00`` in one time zone; ``None`` range means never quiet."""

    def __init__(self, clock_range: str | None, timezone: str) -> None:
        self._range = parse_clock_range(clock_range) if clock_range else None
        self._zone = ZoneInfo(timezone)

    def active(self, now: float) -> bool:
        """True while mails must wait."""
        if self._range is None:
            return False
        start, end = self._range
        local = dt.datetime.fromtimestamp(now, self._zone).time()
        if start < end:
            return start <= local < end
        return local >= start or local < end
