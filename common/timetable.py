"""School hours, defined once: the timetable model, its compiled calendar, and the resolver.

Rules, alerts and agents all ask this module whether an instant is school time: a school's own
``timetable``, else the configured default (``rules.default_timetable``), in the school's
``timezone`` unless its timetable names one (:class:`SchoolHours`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Final, Literal, NamedTuple, Protocol
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
        return SchoolCalendar(self).is_school_time(int(when.timestamp() * 1000))


_CACHED_DAYS: Final = 16


class SchoolDay(NamedTuple):
    """One local day: [start_ms, end_ms) and its school-hour spans (none off school days)."""

    start_ms: int
    end_ms: int
    spans: tuple[tuple[int, int], ...]


class SchoolCalendar:
    """A timetable compiled once: each local day's school hours as UTC millisecond spans.

    Asked once per device and Wi-Fi sample, so a timestamp is converted to local time only when
    it leaves the cached day. The cached day is one tuple, replaced whole: a reader in another
    thread sees the old day or the new one, never a mix.
    """

    def __init__(self, timetable: Timetable) -> None:
        self.timetable = timetable
        self.zone = ZoneInfo(timetable.timezone)
        self._days = {_WEEKDAYS.index(d) for d in timetable.days}
        self._hours = sorted(parse_hours(h) for h in timetable.hours)
        self._holidays = [parse_day_range(h) for h in timetable.holidays]
        self._day = SchoolDay(0, 0, ())
        self._by_date: dict[dt.date, SchoolDay] = {}

    def is_school_time(self, ts_ms: int) -> bool:
        """True when the instant falls in school hours of a school day."""
        return self.period_start_ms(ts_ms) is not None

    def period_start_ms(self, ts_ms: int) -> int | None:
        """Start of the school period ``ts_ms`` falls in; None outside school hours."""
        day = self._day
        if not day[0] <= ts_ms < day[1]:
            day = self._day = self._load(ts_ms)
        return next((a for a, b in day[2] if a <= ts_ms < b), None)

    def is_school_day(self, date: dt.date) -> bool:
        """A teaching weekday that is not a holiday."""
        return date.weekday() in self._days and not any(
            a <= date <= b for a, b in self._holidays)

    def day(self, date: dt.date) -> SchoolDay:
        """The local day ``date`` with its school-hour spans, sorted."""
        cached = self._by_date.get(date)
        if cached is None:
            cached = self._compile(date)
            if len(self._by_date) >= _CACHED_DAYS:
                self._by_date.clear()
            self._by_date[date] = cached
        return cached

    def _load(self, ts_ms: int) -> SchoolDay:
        return self.day(dt.datetime.fromtimestamp(ts_ms / 1000, self.zone).date())

    def _compile(self, date: dt.date) -> SchoolDay:
        start = _ms(dt.datetime.combine(date, dt.time(0), self.zone))
        end = _ms(dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), self.zone))
        if not self.is_school_day(date):
            return SchoolDay(start, end, ())
        spans = tuple(
            (_ms(dt.datetime.combine(date, first, self.zone)),
             end if last == dt.time.max else _ms(dt.datetime.combine(date, last, self.zone)))
            for first, last in self._hours)
        return SchoolDay(start, end, spans)


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


class Place(Protocol):
    """What decides a place's hours: an inventory school has both attributes."""

    @property
    def timetable(self) -> Timetable | None: ...

    @property
    def timezone(self) -> str | None: ...


class SchoolHours:
    """The one resolver of school hours: a place's own timetable, else the default.

    The place's ``timezone`` applies unless its timetable names a zone itself. Most schools of a
    district share one timetable: each distinct one is compiled once.
    """

    def __init__(self, default: Timetable | None = None) -> None:
        self.default = default if default is not None else Timetable()
        self._calendars: dict[str, SchoolCalendar] = {}

    def timetable(self, place: Place | None) -> Timetable:
        """The timetable that decides ``place``'s hours (None: the default)."""
        if place is None:
            return self.default
        table = place.timetable or self.default
        if place.timezone and "timezone" not in table.model_fields_set:
            table = table.model_copy(update={"timezone": place.timezone})
        return table

    def calendar(self, place: Place | None) -> SchoolCalendar:
        """The compiled calendar of ``place`` (None: of the default timetable)."""
        return self.compile(self.timetable(place))

    def compile(self, table: Timetable) -> SchoolCalendar:
        """``table`` compiled, once per distinct timetable."""
        key = table.model_dump_json()
        found = self._calendars.get(key)
        if found is None:
            found = self._calendars[key] = SchoolCalendar(table)
        return found
