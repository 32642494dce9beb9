"""School timetable: which moments are school hours (weekdays, hours, holidays, time zone)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, field_validator

from common.config import Strict

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: Final = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HOURS_RE: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def parse_hours(value: str) -> tuple[dt.time, dt.time]:
    """'07:30-12:00' -> (07:30, 12:00); raises ValueError."""
    m = _HOURS_RE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a range like '07:30-12:00'")
    start = dt.time(int(m.group(1)), int(m.group(2)))
    end_h = int(m.group(3))
    if end_h == 24 and m.group(4) != "00":
        raise ValueError(f"{value!r}: 24:00 is the latest end")
    end = dt.time.max if end_h == 24 else dt.time(end_h, int(m.group(4)))
    if end <= start:
        raise ValueError(f"{value!r}: end must be after start")
    return start, end


def parse_day_range(value: str) -> tuple[dt.date, dt.date]:
    """'2026-10-01..2026-10-07' or a single '2026-10-01' -> (first, last)."""
    first, _, last = value.partition("..")
    try:
        start = dt.date.fromisoformat(first.strip())
        end = dt.date.fromisoformat(last.strip()) if last else start
    except ValueError:
        raise ValueError(f"{value!r} is not a date or 'YYYY-MM-DD..YYYY-MM-DD'") from None
    if end < start:
        raise ValueError(f"{value!r}: last day before first")
    return start, end


def check_timezone(value: str) -> str:
    """``value`` when it names a known IANA time zone; raises ValueError."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: name too long
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


# A config value that must be a known time zone, e.g. "Asia/Shanghai".
TimeZoneName = Annotated[str, AfterValidator(check_timezone)]


class Timetable(Strict):
    """When a school teaches; probes and uptime figures can be limited to these hours."""

    timezone: TimeZoneName = "Asia/Shanghai"
    days: list[Weekday] = ["mon", "tue", "wed", "thu", "fri"]
    hours: list[str] = ["07:30-12:00", "13:30-17:30"]
    holidays: list[str] = []

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_hours(item)
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_day_range(item)
        return value

    def is_school_time(self, when: dt.datetime) -> bool:
        """True when ``when`` (timezone-aware) falls in school hours of a school day."""
        local = when.astimezone(ZoneInfo(self.timezone))
        if _WEEKDAYS[local.weekday()] not in self.days:
            return False
        day = local.date()
        for item in self.holidays:
            first, last = parse_day_range(item)
            if first <= day <= last:
                return False
        now = local.time().replace(tzinfo=None)
        return any(start <= now < end for start, end in map(parse_hours, self.hours))
