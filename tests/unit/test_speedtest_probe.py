"""The speed-test schedule: planned times inside windows, max per day, daily byte budget."""

from __future__ import annotations

import datetime as dt
import json
import random
import stat
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.probes.base import ProbeError
from agent.probes.speedtest import SpeedtestProbe, SpeedtestSettings, plan_day
from agent.speedtest.client import Endpoint, SpeedtestError, SpeedtestResult, jitter

TZ = ZoneInfo("Asia/Shanghai")
MIB = 1 << 20


class FakeClock:
    """A settable wall clock."""

    def __init__(self, when: dt.datetime) -> None:
        self.when = when

    def __call__(self) -> dt.datetime:
        return self.when


class RecordingRunner:
    """Stands in for the network test; records each call's byte cap."""

    def __init__(self, bytes_per_test: int) -> None:
        self.bytes_per_test = bytes_per_test
        self.caps: list[int] = []

    def __call__(self, server: str, streams: int, duration: float, cap: int) -> SpeedtestResult:
        self.caps.append(cap)
        return SpeedtestResult(server, 95.5, 40.25, 3.5, 0.5, min(cap, self.bytes_per_test),
                               duration * 2)


def settings(**over: object) -> SpeedtestSettings:
    """Settings with test defaults."""
    base: dict[str, object] = {"type": "speedtest", "servers": ["http://10.20.0.5:8080"],
                               "windows": ["08:00-12:00", "14:00-16:00"], "max_per_day": 4,
                               "daily_budget_mb": 100}
    return SpeedtestSettings.model_validate({**base, **over})


def probe(clock: FakeClock, runner: RecordingRunner, **over: object) -> SpeedtestProbe:
    """A probe with injected clock, runner and server choice."""
    return SpeedtestProbe(settings(**over), runner=runner, choose=lambda s: s[0], now=clock,
                          now_ms=lambda: 1_763_890_000_000, rng=random.Random(7))


def test_plan_day_puts_every_time_inside_a_window() -> None:
    """Planned times fall in the windows, sorted, as many as asked."""
    day = dt.date(2026, 11, 23)
    times = plan_day(day, ["08:00-12:00", "14:00-16:00"], 50, TZ, random.Random(1))
    assert len(times) == 50 and times == sorted(times)
    for t in times:
        minutes = t.hour * 60 + t.minute
        assert 8 * 60 <= minutes <= 12 * 60 or 14 * 60 <= minutes <= 16 * 60, t
    assert any(t.hour >= 14 for t in times) and any(t.hour < 12 for t in times)


def test_tests_run_only_when_planned_and_at_most_max_per_day() -> None:
    """Polling all day runs exactly max_per_day tests, none before the first planned time."""
    clock = FakeClock(dt.datetime(2026, 11, 23, 0, 0, tzinfo=TZ))
    runner = RecordingRunner(MIB)
    p = probe(clock, runner)
    assert p.collect() == []  # midnight: nothing planned yet
    samples = []
    for minute in range(0, 24 * 60, 5):
        clock.when = dt.datetime(2026, 11, 23, tzinfo=TZ) + dt.timedelta(minutes=minute)
        samples += p.collect()
    assert len(samples) == 4 == len(runner.caps)
    assert samples[0].kind == "speedtest" and samples[0].fields["down_mbps"] == 95.5
    assert samples[0].tags == {"server": "http://10.20.0.5:8080"}
    # The next day has a plan of its own.
    clock.when = dt.datetime(2026, 11, 24, 23, 59, tzinfo=TZ)
    assert len(p.collect()) == 1  # missed slots are not made up in a burst


def test_daily_budget_caps_and_then_stops_tests() -> None:
    """Each test's byte cap is what is left of today's budget; none runs once it is spent."""
    clock = FakeClock(dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ))
    runner = RecordingRunner(60 * MIB)
    p = probe(clock, runner)
    assert len(p.collect_now()) == 1
    assert runner.caps == [100 * MIB]
    assert len(p.collect_now()) == 1
    assert runner.caps[1] == 40 * MIB  # what was left
    assert p.collect_now() == []  # budget used up
    assert len(runner.caps) == 2


def test_failed_test_is_a_probe_error_naming_the_cause() -> None:
    """An unreachable server is a ProbeError (the scheduler logs it by probe name)."""
    def failing(*_args: object) -> SpeedtestResult:
        raise OSError("connection refused")

    p = SpeedtestProbe(settings(), runner=failing, choose=lambda s: s[0],
                       now=FakeClock(dt.datetime(2026, 11, 23, 9, tzinfo=TZ)))
    with pytest.raises(ProbeError, match="connection refused"):
        p.collect_now()


@pytest.mark.parametrize(("url", "expected"), [
    ("http://10.20.0.5:8080", Endpoint("10.20.0.5", 8080, "")),
    ("http://speed.district.example/librespeed/", Endpoint("speed.district.example", 80,
                                                           "/librespeed")),
])
def test_endpoint_parse(url: str, expected: Endpoint) -> None:
    """Server URLs with and without port and path prefix."""
    assert Endpoint.parse(url) == expected


@pytest.mark.parametrize("url", ["https://x", "ftp://x", "10.0.0.1:80", "http://"])
def test_endpoint_parse_rejects(url: str) -> None:
    """Only plain http URLs with a host."""
    with pytest.raises(ValueError, match="expected http"):
        Endpoint.parse(url)


def test_jitter_is_mean_absolute_difference() -> None:
    """Jitter of round trips 10, 12, 11, 15 ms is (2 + 1 + 4) / 3."""
    assert jitter([10.0, 12.0, 11.0, 15.0]) == pytest.approx(7 / 3)
    assert jitter([5.0]) == 0.0


def test_bad_window_is_a_config_error() -> None:
    """Windows use the timetable's HH:MM-HH:MM form."""
    with pytest.raises(ValueError, match="07:30-12:00"):
        settings(windows=["8-12"])


def test_run_at_start_tests_on_the_first_collect_only() -> None:
    """run_at_start: a test right away (midnight, nothing planned), then only as planned."""
    clock = FakeClock(dt.datetime(2026, 11, 23, 0, 0, tzinfo=TZ))
    runner = RecordingRunner(MIB)
    p = probe(clock, runner, run_at_start=True)
    assert len(p.collect()) == 1
    assert p.collect() == []
    assert len(runner.caps) == 1


def test_run_at_start_is_tried_again_after_a_back_off() -> None:
    """A server not up yet at agent start: the first test is retried after the back-off (5
    min), not on every poll (issue 18: 84 MiB in three polls on a metered link)."""
    clock = FakeClock(dt.datetime(2026, 11, 23, 0, 0, tzinfo=TZ))
    calls: list[int] = []

    def flaky(server: str, streams: int, duration: float, cap: int) -> SpeedtestResult:
        calls.append(cap)
        if len(calls) == 1:
            raise SpeedtestError("connection reset", 28 * MIB)
        return SpeedtestResult(server, 9.5, 4.0, 3.0, 0.5, MIB, 4.0)

    p = SpeedtestProbe(settings(run_at_start=True), runner=flaky, choose=lambda s: s[0],
                       now=clock, now_ms=lambda: 1_763_890_000_000)
    with pytest.raises(ProbeError, match="next try in 300s"):
        p.collect()
    clock.when += dt.timedelta(minutes=1)
    assert p.collect() == [] and len(calls) == 1  # backing off
    clock.when += dt.timedelta(minutes=5)
    assert len(p.collect()) == 1
    assert calls == [100 * MIB, 72 * MIB]  # the failed test's 28 MiB were charged
    assert p.collect() == []


def test_failures_back_off_doubling_and_are_charged() -> None:
    """Each failure doubles the wait (5, 10, 20 min ...) and charges what it moved; once the
    budget is spent by failures no test runs."""
    clock = FakeClock(dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ))
    caps: list[int] = []

    def failing(server: str, streams: int, duration: float, cap: int) -> SpeedtestResult:
        caps.append(cap)
        raise SpeedtestError("garbage.php answered 500", min(cap, 30 * MIB))

    p = SpeedtestProbe(settings(run_at_start=True), runner=failing, choose=lambda s: s[0],
                       now=clock)
    waits = []
    for _ in range(4):
        with pytest.raises(ProbeError, match="answered 500"):
            p.collect_now()
        waits.append(p.state.retry_at - clock.when.timestamp())
    assert waits == [300.0, 600.0, 1200.0, 2400.0]
    assert caps == [100 * MIB, 70 * MIB, 40 * MIB, 10 * MIB]
    assert p.collect_now() == []  # failed tests spent the day's budget: none runs
    assert len(caps) == 4


def test_budget_and_back_off_survive_a_restart(tmp_path: Path) -> None:
    """The state file (0600) carries the day's bytes and the back-off into a new probe; a new
    day starts its budget at 0."""
    state = tmp_path / "state" / "speedtest.json"
    clock = FakeClock(dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ))
    runner = RecordingRunner(60 * MIB)
    first = probe(clock, runner, state_file=str(state))
    assert len(first.collect_now()) == 1
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    again = probe(clock, runner, state_file=str(state))  # the agent restarted
    assert len(again.collect_now()) == 1
    assert runner.caps == [100 * MIB, 40 * MIB]
    assert again.collect_now() == []
    clock.when += dt.timedelta(days=1)
    assert len(probe(clock, runner, state_file=str(state)).collect_now()) == 1
    assert runner.caps[-1] == 100 * MIB


def test_a_back_off_survives_a_restart(tmp_path: Path) -> None:
    """A failing server is not retried by restarting the agent (run_at_start included)."""
    state = str(tmp_path / "speedtest.json")
    clock = FakeClock(dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ))

    def failing(server: str, streams: int, duration: float, cap: int) -> SpeedtestResult:
        raise SpeedtestError("reset", MIB)

    def new() -> SpeedtestProbe:
        return SpeedtestProbe(settings(run_at_start=True, state_file=state), runner=failing,
                              choose=lambda s: s[0], now=clock)
    with pytest.raises(ProbeError):
        new().collect()
    assert new().collect() == []
    assert json.loads(Path(state).read_text())["bytes_used"] == MIB


def test_a_broken_state_file_is_logged_and_ignored(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Garbage in the state file does not stop the probe."""
    state = tmp_path / "speedtest.json"
    state.write_text("{not json")
    clock = FakeClock(dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ))
    assert len(probe(clock, RecordingRunner(MIB), state_file=str(state)).collect_now()) == 1
    assert "unreadable" in caplog.text


def test_the_sample_carries_its_evidence() -> None:
    """Bytes, windows and streams behind the rates travel with them."""
    result = SpeedtestResult("http://x", 9.5, 4.0, 3.0, 0.5, 20 * MIB, 12.0, 10 * MIB, 5 * MIB,
                             7.5, 7.5, 4)
    p = SpeedtestProbe(settings(), runner=lambda *a: result, choose=lambda s: s[0],
                       now=FakeClock(dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ)),
                       now_ms=lambda: 1_763_890_000_000)
    [sample] = p.collect_now()
    assert sample.fields["down_bytes"] == 10 * MIB and sample.fields["up_s"] == 7.5
    assert sample.fields["streams_ok"] == 4


def test_budget_state_is_kept_beside_the_spool_by_default(tmp_path: Path) -> None:
    """A speed test configured without state_file keeps its budget in the agent's state dir."""
    from agent.config import AgentConfig
    from agent.runner import build_probes

    config = AgentConfig.model_validate({
        "agent": {"id": "a1", "school": "s1", "district": "d1"},
        "spool": {"path": str(tmp_path / "state" / "spool.db")},
        "probes": [{"type": "speedtest", "servers": ["http://127.0.0.1:9"]}],
    })
    (scheduled,) = build_probes(config)
    probe = scheduled.probe.probe  # type: ignore[attr-defined]  # GuardedProbe -> the probe
    assert probe.settings.state_file == str(tmp_path / "state" / "speedtest.state.json")


@pytest.mark.parametrize(("url", "authority"), [
    ("http://10.1.2.3:8080", "10.1.2.3:8080"),
    ("http://st.district.example", "st.district.example:80"),
    ("http://[fd00::1]:8080/speedtest", "[fd00::1]:8080"),
])
def test_host_header_brackets_ipv6(url: str, authority: str) -> None:
    """The Host header names an IPv6 server in brackets, as HTTP requires."""
    assert Endpoint.parse(url).authority == authority
