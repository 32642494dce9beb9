"""Scheduled speed tests against the district's server: the school's access bandwidth.

At most ``max_per_day`` tests a day, at random times inside the ``windows`` (spread so a
district's schools do not all test at once), within ``daily_budget_mb`` for metered links.
The probe is polled every ``interval``; it runs a test only when one of today's planned times has
passed.  ``collect_now`` (used by ``agent run --once``) tests at once, still within the budget.

The budget holds whatever the server does (issue 18): every byte a test moves, a failed one's
too, is charged (the client counts bytes before it reads them and reports them on failure); a
failed test backs off (5 min, doubling to 4 h) instead of being retried every poll; the day's
bytes and the back-off are kept in ``state_file`` (0600), so a restart does not reset them; and
the whole test ends within the probe's ``timeout``.
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
from agent.probes.speedtest_state import BudgetState, load_state, save_state
from agent.probes.values import ValueGuard
from agent.speedtest.client import SpeedtestError, SpeedtestResult, pick_server, run_speedtest
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
    # Today's bytes and the back-off after a failure, kept across restarts (e.g. next to the
    # spool: /var/lib/schoolmon/speedtest.json); without it a restart resets the day's budget.
    state_file: str | None = None

    def build(self) -> SpeedtestProbe:
        """The probe running real tests, each ended by the probe's timeout."""
        deadline = 0.9 * (self.timeout or self.interval)  # within the scheduler's timeout

        def runner(server: str, streams: int, duration: float, byte_cap: int) -> SpeedtestResult:
            return run_speedtest(server, streams=streams, duration=duration, byte_cap=byte_cap,
                                 deadline_s=0.8 * deadline)

        def choose(servers: list[str]) -> str:  # a tenth of the time for the choice
            return servers[0] if len(servers) == 1 else pick_server(
                servers, deadline_s=0.1 * deadline)
        return SpeedtestProbe(self, runner=runner, choose=choose)

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


BACKOFF_FIRST_S = 300.0  # after a failed test; doubles with each further failure
BACKOFF_MAX_S = 4 * 3600.0


@dataclass
class DayPlan:
    """Today's planned test times and what has been used."""

    day: dt.date
    times: list[dt.datetime]
    done: int = 0


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
        self.state = load_state(settings.state_file)
        self.guard = ValueGuard(settings.instance_name("speedtest"))

    def _today(self) -> DayPlan:
        today = self.now().astimezone(self.tz).date()
        if self.plan is None or self.plan.day != today:
            s = self.settings
            self.plan = DayPlan(today, plan_day(today, s.windows, s.max_per_day, self.tz,
                                                self.rng))
        if self.state.day != today.isoformat():  # a new day's budget; a back-off stays
            self.state = BudgetState(today.isoformat(), 0, self.state.failures,
                                     self.state.retry_at)
        return self.plan

    def collect(self) -> list[Sample]:
        """Test if a planned time has passed and today's count, budget and back-off allow."""
        plan = self._today()
        if self.now().timestamp() < self.state.retry_at:
            return []  # backing off after a failure: not every poll
        if self._first_collect and self.settings.run_at_start:
            samples = self._test(plan)  # a failure backs off, then run_at_start tries again
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
        budget = int(self.settings.daily_budget_mb * MIB) - self.state.bytes_used
        if budget < MIB:
            log.warning("speed test skipped: today's budget of %.0f MB is used up",
                        self.settings.daily_budget_mb)
            return []
        try:
            server = self.choose(self.settings.servers)
            result = self.runner(server, self.settings.streams, self.settings.duration, budget)
        except (OSError, ValueError) as exc:
            # What a failed test moved is charged too (a server failing at the end of a long
            # download would otherwise cost the budget nothing, every time).
            self._failed(exc.moved if isinstance(exc, SpeedtestError) else 0)
            raise ProbeError(f"speed test failed: {exc} (next try in "
                             f"{self._backoff_s(self.state.failures):.0f}s)") from None
        self._first_collect = False
        self.state = BudgetState(self.state.day, self.state.bytes_used + result.bytes, 0, 0.0)
        save_state(self.settings.state_file, self.state)
        return self.guard.clean([result_sample(result, self.now_ms())])

    @staticmethod
    def _backoff_s(failures: int) -> float:
        return float(min(BACKOFF_FIRST_S * 2.0 ** max(0, failures - 1), BACKOFF_MAX_S))

    def _failed(self, moved: int) -> None:
        failures = self.state.failures + 1
        self.state = BudgetState(self.state.day, self.state.bytes_used + moved, failures,
                                 self.now().timestamp() + self._backoff_s(failures))
        save_state(self.settings.state_file, self.state)


def result_sample(result: SpeedtestResult, ts_ms: int) -> Sample:
    """A result as a ``speedtest`` sample, with the evidence behind its rates."""
    return Sample("speedtest", ts_ms, {"server": result.server[:128]}, {
        "down_mbps": result.down_mbps, "up_mbps": result.up_mbps, "rtt_ms": result.rtt_ms,
        "jitter_ms": result.jitter_ms, "bytes": result.bytes, "duration_s": result.duration_s,
        "down_bytes": result.down_bytes, "up_bytes": result.up_bytes, "down_s": result.down_s,
        "up_s": result.up_s, "streams_ok": result.streams_ok,
    })
