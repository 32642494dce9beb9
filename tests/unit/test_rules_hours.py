"""School hours, defined once (common/timetable.py): the compiled calendar against an
independent reference, time-zone changes, the resolver; and the rules' time buckets."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.inventory import School
from collector.rules.window import BucketGeometry, RingCounter
from common.timetable import SchoolCalendar, SchoolHours, Timetable

TABLES = [
    Timetable(),
    Timetable(timezone="Europe/London", days=["mon", "tue", "wed", "thu", "fri"],
              hours=["08:45-15:15"], holidays=["2026-10-26..2026-10-30", "2027-03-29"]),
    Timetable(timezone="America/Santiago", days=["mon", "sat"], hours=["00:00-24:00"]),
    Timetable(timezone="Asia/Shanghai", hours=["07:30-12:00", "13:30-17:30"],
              holidays=["2026-10-01..2026-10-07"]),
]
# 2026-2027, across both DST changes of London and Santiago.
INSTANTS = st.integers(1_767_225_600_000, 1_830_297_600_000)
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def reference(table: Timetable, ts_ms: int) -> bool:
    """School time the slow, obvious way: local wall clock against the strings."""
    local = dt.datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(table.timezone))
    if _DAYS[local.weekday()] not in table.days:
        return False
    day = local.date().isoformat()
    for item in table.holidays:
        first, _, last = item.partition("..")
        if first <= day <= (last or first):
            return False
    now = local.strftime("%H:%M:%S.%f")
    return any(span[:5] <= now < (span[6:] if span[6:] != "24:00" else "99")
               for span in table.hours)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(range(len(TABLES))), st.lists(INSTANTS, min_size=1, max_size=20))
def test_same_answer_as_reference(index: int, instants: list[int]) -> None:
    """For any instants, in any order, the compiled calendar agrees with the reference."""
    table = TABLES[index]
    calendar = SchoolCalendar(table)
    for ts in instants:
        expected = reference(table, ts)
        assert calendar.is_school_time(ts) == expected, ts
        assert table.is_school_time(dt.datetime.fromtimestamp(ts / 1000, dt.UTC)) == expected


def test_dst_day_in_london() -> None:
    """On the day clocks go back (25 hours), 08:45 local is still school time."""
    calendar = SchoolCalendar(TABLES[1])
    start = int(dt.datetime(2026, 10, 26, 8, 45, tzinfo=dt.UTC).timestamp() * 1000)
    assert not calendar.is_school_time(start)  # half-term holiday
    monday = int(dt.datetime(2026, 11, 2, 8, 45, tzinfo=dt.UTC).timestamp() * 1000)
    assert calendar.is_school_time(monday) and not calendar.is_school_time(monday - 1)
    assert calendar.period_start_ms(monday + 3_600_000) == monday


def school(**extra: object) -> School:
    """A school for timetable resolution."""
    return School.model_validate({"id": "s", "name": "s", "district": "d",
                                  "category": "rural", "classes": 1, **extra})


def test_timetable_resolution() -> None:
    """Own timetable, else the default; the school's timezone unless the timetable names one."""
    default = Timetable(hours=["08:00-09:00"])
    hours = SchoolHours(default)
    assert hours.timetable(school()) is default and hours.timetable(None) is default
    assert hours.timetable(school(timezone="Asia/Urumqi")).timezone == "Asia/Urumqi"
    assert hours.timetable(school(timezone="Asia/Urumqi")).hours == ["08:00-09:00"]
    own = {"timezone": "Asia/Shanghai", "hours": ["10:00-11:00"]}
    resolved = hours.timetable(school(timezone="Asia/Urumqi", timetable=own))
    assert (resolved.timezone, resolved.hours) == ("Asia/Shanghai", ["10:00-11:00"])
    resolved = hours.timetable(school(timezone="Asia/Urumqi", timetable={"hours": ["10:00-11:00"]}))
    assert resolved.timezone == "Asia/Urumqi"
    # One compiled calendar per distinct timetable.
    assert hours.calendar(school()) is hours.calendar(None)
    assert SchoolHours().default == Timetable()


def test_ring_counter_window_and_expiry() -> None:
    """Counts per bucket; a window sums its buckets; old buckets are reused, not summed."""
    geometry = BucketGeometry.for_window(7 * 86_400_000, 28)
    assert (geometry.width_ms, geometry.ring) == (21_600_000, 29)
    counter = RingCounter(geometry.ring)
    assert counter.totals(0, 10**9) == (0, 0)
    assert counter.share_pct(0, 10**9) is None
    for bucket in range(100, 140):
        counter.add(bucket, bucket % 2 == 0)
        counter.add(bucket, True)
    assert counter.totals(130, 139) == (15, 20)
    assert counter.totals(111, 139) == (43, 58)  # the whole ring
    assert counter.totals(0, 139) == (43, 58)  # older buckets are gone
    assert counter.totals(140, 200) == (0, 0)
    assert counter.add(100, True) is False  # older than the ring: not counted
    counter.add_hit(139)
    assert counter.totals(139, 139) == (2, 2)


def test_ring_counter_jump_clears_skipped_buckets() -> None:
    """A gap longer than the ring leaves no stale counts behind."""
    counter = RingCounter(5)
    for bucket in range(0, 5):
        counter.add(bucket, True)
    counter.add(1000, False)
    assert counter.totals(0, 1000) == (0, 1)
    counter.add_counts(999, 7, 10)
    assert counter.totals(996, 1000) == (7, 11)
