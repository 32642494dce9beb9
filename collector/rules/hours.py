"""School hours for the per-sample check: a Timetable compiled to UTC spans per local day.

``Timetable.is_school_time`` parses its hours and holidays on every call; the engine asks once
per device and Wi-Fi sample, so it keeps each local day's school hours as millisecond spans and
converts a timestamp to local time only when it leaves the cached day.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from collector.inventory import School
from common.timetable import Timetable, parse_day_range, parse_hours

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CACHED_DAYS = 16


def school_timetable(school: School, default: Timetable) -> Timetable:
    """The timetable that decides a school's hours.

    The school's own ``timetable``, else ``default``; the school's ``timezone`` applies unless
    its timetable names a zone itself.
    """
    table = school.timetable or default
    if school.timezone and "timezone" not in table.model_fields_set:
        table = table.model_copy(update={"timezone": school.timezone})
    return table


class SchoolHours:
    """Answers ``is_school_time(ts_ms)`` like ``Timetable.is_school_time``, fast."""

    def __init__(self, timetable: Timetable) -> None:
        self.zone = ZoneInfo(timetable.timezone)
        self._days = {_WEEKDAYS.index(d) for d in timetable.days}
        self._hours = [parse_hours(h) for h in timetable.hours]
        self._holidays = [parse_day_range(h) for h in timetable.holidays]
        self._start = 0  # the cached local day, as [start, end) in ms
        self._end = 0
        self._spans: list[tuple[int, int]] = []
        self._by_date: dict[dt.date, tuple[int, int, list[tuple[int, int]]]] = {}

    def is_school_time(self, ts_ms: int) -> bool:
        """True when the instant falls in school hours of a school day."""
        if not self._start <= ts_ms < self._end:
            self._load(ts_ms)
        return any(a <= ts_ms < b for a, b in self._spans)

    def _load(self, ts_ms: int) -> None:
        day = dt.datetime.fromtimestamp(ts_ms / 1000, self.zone).date()
        cached = self._by_date.get(day)
        if cached is None:
            cached = self._compile(day)
            if len(self._by_date) >= _CACHED_DAYS:
                self._by_date.clear()
            self._by_date[day] = cached
        self._start, self._end, self._spans = cached

    def _compile(self, day: dt.date) -> tuple[int, int, list[tuple[int, int]]]:
        start = _ms(dt.datetime.combine(day, dt.time(0), self.zone))
        end = _ms(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.zone))
        if day.weekday() not in self._days or any(a <= day <= b for a, b in self._holidays):
            return start, end, []
        spans = []
        for first, last in self._hours:
            a = _ms(dt.datetime.combine(day, first, self.zone))
            b = end if last == dt.time.max else _ms(dt.datetime.combine(day, last, self.zone))
            spans.append((a, b))
        return start, end, spans


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)
