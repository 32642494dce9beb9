"""School timetable: hours, days, holidays and time zones."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from common.timetable import Timetable, parse_day_range, parse_hours

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("07:30-12:00", dt.time(7, 30), dt.time(12, 0)),
        ("00:00-24:00", dt.time(0, 0), dt.time.max),
        ("13:30-17:30", dt.time(13, 30), dt.time(17, 30)),
        ("23:00-23:59", dt.time(23, 0), dt.time(23, 59)),
    ],
)
def test_parse_hours_valid(text: str, start: dt.time, end: dt.time) -> None:
    """HH:MM-HH:MM ranges, 24:00 meaning the end of the day."""
    assert parse_hours(text) == (start, end)


@pytest.mark.parametrize(
    "text",
    ["7:30-12:00", "07:30-07:30", "12:00-07:30", "24:00-24:00", "07:60-08:00", "07:30",
     "07:30-25:00", "23:00-24:30", "", "07:30 - 12:00"],
)
def test_parse_hours_invalid(text: str) -> None:
    """Malformed, empty, reversed or past-midnight ranges are refused."""
    with pytest.raises(ValueError, match=r"range like|end must be after|24:00 is the latest"):
        parse_hours(text)


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("2026-10-01..2026-10-07", dt.date(2026, 10, 1), dt.date(2026, 10, 7)),
        ("2026-10-01", dt.date(2026, 10, 1), dt.date(2026, 10, 1)),
        (" 2026-01-01 .. 2026-01-02 ", dt.date(2026, 1, 1), dt.date(2026, 1, 2)),
    ],
)
def test_parse_day_range_valid(text: str, first: dt.date, last: dt.date) -> None:
    """A single day or an inclusive range."""
    assert parse_day_range(text) == (first, last)


@pytest.mark.parametrize("text", ["2026-10-07..2026-10-01", "2026-13-01", "tomorrow", ""])
def test_parse_day_range_invalid(text: str) -> None:
    """Reversed ranges and non-dates are refused."""
    with pytest.raises(ValueError, match=r"not a date|last day before first"):
        parse_day_range(text)


def at(year: int, month: int, day: int, hour: int, minute: int = 0, *,
       tz: ZoneInfo = SHANGHAI) -> dt.datetime:
    """An aware datetime."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz)


TT = Timetable(holidays=["2026-10-01..2026-10-07", "2026-09-10"])


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(2026, 11, 23, 7, 29), False),   # Monday, before the morning
        (at(2026, 11, 23, 7, 30), True),    # start is inclusive
        (at(2026, 11, 23, 11, 59), True),
        (at(2026, 11, 23, 12, 0), False),   # end is exclusive
        (at(2026, 11, 23, 13, 0), False),   # lunch
        (at(2026, 11, 23, 14, 0), True),
        (at(2026, 11, 27, 17, 29), True),   # Friday
        (at(2026, 11, 28, 10, 0), False),   # Saturday
        (at(2026, 11, 29, 10, 0), False),   # Sunday
        (at(2026, 10, 1, 10, 0), False),    # holiday range, first day
        (at(2026, 10, 7, 10, 0), False),    # holiday range, last day
        (at(2026, 10, 8, 10, 0), True),     # day after the holidays (Thursday)
        (at(2026, 9, 10, 10, 0), False),    # single holiday
        # 02:00 UTC on a Monday is 10:00 in Shanghai
        (dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC), True),
        # 20:00 UTC on Sunday is 04:00 Monday in Shanghai: not yet school
        (dt.datetime(2026, 11, 22, 20, 0, tzinfo=dt.UTC), False),
        # 23:30 UTC Sunday is 07:30 Monday in Shanghai
        (dt.datetime(2026, 11, 22, 23, 30, tzinfo=dt.UTC), True),
    ],
)
def test_is_school_time(when: dt.datetime, expected: bool) -> None:
    """Weekdays, hours and holidays in the school's own time zone."""
    assert TT.is_school_time(when) is expected


def test_custom_days_and_zone() -> None:
    """A Saturday school in another zone."""
    tt = Timetable(timezone="Europe/Amsterdam", days=["sat"], hours=["09:00-10:00"])
    assert tt.is_school_time(dt.datetime(2026, 11, 28, 8, 30, tzinfo=dt.UTC))  # 09:30 CET
    assert not tt.is_school_time(dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC))  # 10:30
    assert not tt.is_school_time(dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC))  # Friday


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"days": ["monday"]}, "days.0"),
        ({"hours": ["08:00-07:00"]}, "hours"),
        ({"holidays": ["2026-02-30"]}, "holidays"),
        ({"term": "autumn"}, "term"),
    ],
)
def test_timetable_validation(data: dict[str, object], key: str) -> None:
    """Bad zones, days, hours, holidays and unknown keys are refused at the right key."""
    with pytest.raises(ValidationError) as exc:
        Timetable.model_validate(data)
    locs = [".".join(str(p) for p in e["loc"]) for e in exc.value.errors()]
    assert locs == [key]
