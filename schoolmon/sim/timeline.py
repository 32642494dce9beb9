"""When simulated agents sample: school days, school-hour ticks and the gateway's night ticks.

Ticks sit on a grid anchored at local midnight (``midnight + k * step``), so a backfilled day
and a live day have the same sample times and the same per-day outage schedule.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from common.timetable import SchoolHours, Timetable

# School days and hours come from the one resolver the rules, alerts and agents use.
_HOURS = SchoolHours()


def is_school_day(timetable: Timetable, day: dt.date) -> bool:
    """A teaching weekday that is not a holiday."""
    return _HOURS.compile(timetable).is_school_day(day)


def local_date(timetable: Timetable, ts_ms: int) -> dt.date:
    """The school's calendar date at ``ts_ms``."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(timetable.timezone)).date()


def midnight_ms(timetable: Timetable, day: dt.date) -> int:
    """Local midnight starting ``day``, in epoch ms."""
    start = dt.datetime.combine(day, dt.time(), ZoneInfo(timetable.timezone))
    return int(start.timestamp() * 1000)


def backfill_days(timetable: Timetable, today: dt.date, count: int) -> list[dt.date]:
    """The last ``count`` school days before ``today``, oldest first."""
    days: list[dt.date] = []
    day = today
    for _ in range(count * 7 + 400):  # holidays can be long; the bound only stops a bad table
        if len(days) == count:
            break
        day -= dt.timedelta(days=1)
        if is_school_day(timetable, day):
            days.append(day)
    return sorted(days)


def _hour_ranges_ms(timetable: Timetable, day: dt.date) -> tuple[tuple[int, int], ...]:
    """School-hour spans of ``day`` (none on a non-school day)."""
    return _HOURS.compile(timetable).day(day).spans


def school_end_ms(timetable: Timetable, day: dt.date) -> int:
    """When the last lesson of ``day`` ends (local midnight when it has none)."""
    return max((b for _a, b in _hour_ranges_ms(timetable, day)), default=midnight_ms(timetable,
                                                                                    day))


def school_ticks(timetable: Timetable, day: dt.date, step_s: float) -> list[int]:
    """Sample times of ``day`` inside school hours (none on a non-school day)."""
    if not is_school_day(timetable, day):
        return []
    base, step = midnight_ms(timetable, day), int(step_s * 1000)
    ticks: list[int] = []
    for a, b in _hour_ranges_ms(timetable, day):
        k = -(-(a - base) // step)  # first grid point at or after the start
        while base + k * step < b:
            ticks.append(base + k * step)
            k += 1
    return ticks


def day_ticks(timetable: Timetable, day: dt.date, step_s: float,
              night_step_s: float) -> list[int]:
    """A gateway's sample times of ``day``: every ``step_s`` in school hours, else coarser."""
    inside = school_ticks(timetable, day, step_s)
    ranges = _hour_ranges_ms(timetable, day) if inside else []
    base, night = midnight_ms(timetable, day), int(night_step_s * 1000)
    end = midnight_ms(timetable, day + dt.timedelta(days=1))
    outside = [t for t in range(base, end, night) if not any(a <= t < b for a, b in ranges)]
    return sorted(inside + outside)


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every calendar day from ``first`` to ``last`` inclusive."""
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
