"""Scheduled speed tests against the district's server: the school's access bandwidth.

At most ``max_per_day`` tests a day, at random times inside the ``windows`` (spread so a
district's schools do not all test at once), within ``daily_budget_mb`` for metered links.
The probe is polled every ``interval``; it runs a test only when one of today's planned times has
passed.  ``collect_now`` (used by ``agent run --once``) tests at once, still within the budget.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from agent.probes.base import ProbeError, ProbeSettingsBase, WallClockMs, wall_clock_ms
from agent.speedtest.client import SpeedtestResult, pick_server, run_speedtest
from common.config import Duration
from common.timetable import TimeZoneName, parse_hours
from common.wire import Sample

log = logging.getLogger(__name__)

MIB = 1 << 20


class SpeedtestSettings(ProbeSettingsBase):
    """``type: speedtest``."""

    type: Literal["speedtest"]
    interval: Duration = 60.0  # how often the plan is checked, not how often tests run
    timeout: Duration | None = 120.0
    servers: list[str] = Field(min_length=1)
    streams: int = Field(default=4, ge=1, le=32)
    duration: Duration = 10.0
    windows: list[str] = ["08:00-12:00", "12:00-16:00"]
    max_per_day: int = Field(default=4, ge=0, le=96)
    daily_budget_mb: float = Field(default=2000.0, gt=0)
    timezone: TimeZoneName = "Asia/Shanghai"
    # Test once right after the agent starts (an installer wants a figure at once), then plan.
    run_at_start: bool = False

    def build(self) -> SpeedtestProbe:
        """The probe running real tests."""
        return SpeedtestProbe(self)

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_hours(item)
        return value


Runner = Callable[[str, int, float, int], SpeedtestResult]


def default_runner(server: str, streams: int, duration: float,
                   byte_cap: int) -> SpeedtestResult:
    """Run a real test."""
    return run_speedtest(server, streams=streams, duration=duration, byte_cap=byte_cap)


@dataclass
class DayPlan:
    """Today's planned test times and what has been used."""

    day: dt.date
    times: list[dt.datetime]
    done: int = 0
    bytes_used: int = 0


def plan_day(day: dt.date, windows: list[str], count: int, tz: dt.tzinfo,
             rng: random.Random) -> list[dt.datetime]:
    """``count`` random times inside the windows of ``day`` (sorted), spread over windows."""
    spans = []
    for item in windows:
        start, end = parse_hours(item)
        begin = dt.datetime.combine(day, start, tz)
        finish = dt.datetime.combine(day, end, tz)
        spans.append((begin, (finish - begin).total_seconds()))
    total = sum(length for _, length in spans)
    times = []
    for _ in range(count):
        offset = rng.uniform(0, total)
        for begin, length in spans:
            if offset <= length:
                times.append(begin + dt.timedelta(seconds=offset))
                break
            offset -= length
    return sorted(times)


class SpeedtestProbe:
    """Runs planned tests; one ``speedtest`` sample per test."""

    def __init__(self, settings: SpeedtestSettings, *, runner: Runner = default_runner,
                 choose: Callable[[list[str]], str] = pick_server,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 now_ms: WallClockMs = wall_clock_ms, rng: random.Random | None = None) -> None:
        from zoneinfo import ZoneInfo

        self.settings = settings
        self.runner = runner
        self.choose = choose
        self.now = now
        self.now_ms = now_ms
        self.rng = rng or random.Random()
        self.tz = ZoneInfo(settings.timezone)
        self.plan: DayPlan | None = None
        self._first_collect = True

    def _today(self) -> DayPlan:
        today = self.now().astimezone(self.tz).date()
        if self.plan is None or self.plan.day != today:
            s = self.settings
            self.plan = DayPlan(today, plan_day(today, s.windows, s.max_per_day, self.tz,
                                                self.rng))
        return self.plan

    def collect(self) -> list[Sample]:
        """Test if a planned time has passed and today's count and budget allow."""
        plan = self._today()
        if self._first_collect and self.settings.run_at_start:
            samples = self._test(plan)  # a failure raises and is tried again next poll
            self._first_collect = False
            return samples
        now = self.now()
        due = sum(1 for t in plan.times if t <= now)
        if plan.done >= due:
            return []
        plan.done = due  # missed slots are not made up in a burst
        return self._test(plan)

    def collect_now(self) -> list[Sample]:
        """Test at once (``agent run --once``), within today's budget."""
        return self._test(self._today())

    def _test(self, plan: DayPlan) -> list[Sample]:
        budget = int(self.settings.daily_budget_mb * MIB) - plan.bytes_used
        if budget < MIB:
            log.warning("speed test skipped: today's budget of %.0f MB is used up",
                        self.settings.daily_budget_mb)
            return []
        try:
            server = self.choose(self.settings.servers)
            result = self.runner(server, self.settings.streams, self.settings.duration, budget)
        except (OSError, ValueError) as exc:
            raise ProbeError(f"speed test failed: {exc}") from None
        plan.bytes_used += result.bytes
        return [result_sample(result, self.now_ms())]


def result_sample(result: SpeedtestResult, ts_ms: int) -> Sample:
    """A result as a ``speedtest`` sample."""
    return Sample("speedtest", ts_ms, {"server": result.server[:128]}, {
        "down_mbps": result.down_mbps, "up_mbps": result.up_mbps, "rtt_ms": result.rtt_ms,
        "jitter_ms": result.jitter_ms, "bytes": result.bytes, "duration_s": result.duration_s,
    })
