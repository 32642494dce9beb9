"""school_hours_only through the ProbeScheduler with an injected clock: holidays, weekends,
session edges and the school's time zone (test_scheduler.py has the basic cases)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.scheduler import ProbeScheduler, ScheduledProbe
from agent.spool import Spool
from common.timetable import Timetable
from common.wire import Sample

TS = 1_763_890_000_000
WAIT = 10.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
TIMETABLE = Timetable(timezone="Asia/Shanghai", days=["mon", "tue", "wed", "thu", "fri"],
                      hours=["07:30-12:00", "13:30-17:30"],
                      holidays=["2026-10-01..2026-10-07", "2026-09-25"])


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> dt.datetime:
    """A moment given in school (Shanghai) time."""
    return dt.datetime(y, mo, d, h, mi, tzinfo=SHANGHAI)


class Counting:
    """An av-like probe that counts its runs."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> list[Sample]:
        """One av sample."""
        self.calls += 1
        return [Sample("av", TS, {"device": "proj-301"}, {"online": True})]


class Clock:
    """The scheduler's wall clock, settable by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    """A real spool on disk."""
    s = Spool(tmp_path / "spool.db", 10**9, 86400.0, clock_ms=lambda: TS).open()
    yield s
    s.close()


def runs_at(spool: Spool, when: dt.datetime, timetable: Timetable = TIMETABLE) -> bool:
    """Whether a school_hours_only probe runs when submitted at ``when``; an unrestricted
    probe beside it always runs."""
    limited, free = Counting(), Counting()
    sched = ProbeScheduler(
        [ScheduledProbe("av", limited, 60.0, 5.0, 0.0, school_hours_only=True),
         ScheduledProbe("host", free, 60.0, 5.0, 0.0)],
        spool, timetable, monotonic=lambda: 1000.0, now=lambda: when)
    try:
        submitted = sched.submit("av") is not None
        assert sched.submit("host") is not None
        assert all(p.idle.wait(WAIT) for p in sched.probes.values())
    finally:
        sched.shutdown()
    assert free.calls == 1
    assert limited.calls == int(submitted)
    return submitted


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        pytest.param(local(2026, 10, 5, 8), False, id="holiday-range-monday-in-hours"),
        pytest.param(local(2026, 10, 1, 7, 30), False, id="holiday-first-day"),
        pytest.param(local(2026, 10, 7, 16), False, id="holiday-last-day"),
        pytest.param(local(2026, 9, 25, 10), False, id="single-day-holiday-friday"),
        pytest.param(local(2026, 10, 8, 10), True, id="day-after-holidays-runs"),
        pytest.param(local(2026, 9, 24, 10), True, id="day-before-holiday-runs"),
        pytest.param(local(2026, 11, 29, 10), False, id="sunday"),
        pytest.param(local(2026, 11, 28, 14), False, id="saturday-afternoon"),
        pytest.param(local(2026, 11, 24, 14), True, id="tuesday-afternoon-session"),
        pytest.param(local(2026, 11, 24, 7, 30), True, id="session-start-inclusive"),
        pytest.param(local(2026, 11, 24, 7, 29), False, id="before-school"),
        pytest.param(local(2026, 11, 24, 12, 0), False, id="session-end-exclusive"),
        pytest.param(local(2026, 11, 24, 17, 30), False, id="after-school"),
    ],
)
def test_school_hours_and_holidays(spool: Spool, when: dt.datetime, expected: bool) -> None:
    """Holidays (ranges inclusive, single days) and weekends are skipped inside school hours;
    school-hour weekdays run; sessions start inclusive and end exclusive."""
    assert runs_at(spool, when) is expected


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # 2026-09-30 23:30 UTC is 2026-10-01 07:30 in Shanghai: a holiday there.
        pytest.param(dt.datetime(2026, 9, 30, 23, 30, tzinfo=dt.UTC), False,
                     id="utc-workday-local-holiday"),
        # 2026-10-07 23:30 UTC is Thursday 2026-10-08 07:30 in Shanghai: school again.
        pytest.param(dt.datetime(2026, 10, 7, 23, 30, tzinfo=dt.UTC), True,
                     id="utc-holiday-local-workday"),
        # Friday 2026-11-27 23:45 UTC is Saturday 07:45 in Shanghai.
        pytest.param(dt.datetime(2026, 11, 27, 23, 45, tzinfo=dt.UTC), False,
                     id="utc-friday-local-saturday"),
    ],
)
def test_holidays_and_weekends_are_school_local_days(spool: Spool, utc: dt.datetime,
                                                     expected: bool) -> None:
    """The agent's clock is UTC; days and holidays are the school's local dates."""
    assert runs_at(spool, utc) is expected


def test_saturday_school_when_configured(spool: Spool) -> None:
    """A school teaching on Saturdays lists sat in days; holidays still win."""
    six_days = TIMETABLE.model_copy(update={"days": ["mon", "tue", "wed", "thu", "fri",
                                                     "sat"]})
    assert runs_at(spool, local(2026, 11, 28, 9), six_days) is True
    assert runs_at(spool, local(2026, 10, 3, 9), six_days) is False  # a holiday Saturday


def test_clock_is_read_at_every_run(spool: Spool) -> None:
    """The same scheduler skips during the holiday and runs once school starts again."""
    probe = Counting()
    clock = Clock(local(2026, 10, 7, 10))
    sched = ProbeScheduler([ScheduledProbe("av", probe, 60.0, 5.0, 0.0,
                                           school_hours_only=True)],
                           spool, TIMETABLE, monotonic=lambda: 1000.0, now=clock)
    try:
        assert sched.submit("av") is None
        clock.now = local(2026, 10, 8, 7, 29)
        assert sched.submit("av") is None
        clock.now = local(2026, 10, 8, 7, 30)
        future = sched.submit("av")
        assert future is not None and len(future.result(WAIT)) == 1
        assert sched.probes["av"].idle.wait(WAIT)
    finally:
        sched.shutdown()
    assert probe.calls == 1
    assert spool.stats().depth == 1
