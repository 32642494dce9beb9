"""The probe scheduler: isolation, errors, timeouts, school hours, batching into a real spool."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from agent.scheduler import ENVELOPE_HEAD_MAX, OVERDUE_GRACE_S, ProbeScheduler, ScheduledProbe
from agent.spool import Spool
from common.timetable import Timetable
from common.wire import (
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_BATCH,
    AgentIdentity,
    Sample,
    wrap_envelope,
)

TS = 1_763_890_000_000
WAIT = 10.0  # generous bound for real thread hand-offs; never reached when things work
MONDAY_10H = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
SATURDAY_10H = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class CountingProbe:
    """Returns ``n`` host samples and counts its calls."""

    def __init__(self, n: int = 1) -> None:
        self.n = n
        self.calls = 0

    def collect(self) -> list[Sample]:
        """n samples with distinct timestamps."""
        self.calls += 1
        return [Sample("host", TS + i, {}, {"cpu_pct": float(i % 100)}) for i in range(self.n)]


class BrokenProbe:
    """Always fails."""

    def collect(self) -> list[Sample]:
        """Raise like a probe whose target is down."""
        raise ConnectionError("core-sw 192.168.1.2: no answer")


class HeldProbe:
    """Runs until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = threading.Event()

    def collect(self) -> list[Sample]:
        """Block until released, then return one sample."""
        self.running.set()
        self.release.wait(WAIT)
        return [Sample("host", TS, {}, {"cpu_pct": 1.0})]


def scheduled(name: str, probe: object, *, timeout: float = 5.0,
              school_hours_only: bool = False) -> ScheduledProbe:
    """A scheduled probe with a 60 s interval."""
    return ScheduledProbe(name, probe, 60.0, timeout, 0.0,  # type: ignore[arg-type]
                          school_hours_only=school_hours_only)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    """A real spool on disk."""
    s = Spool(tmp_path / "spool.db", 10**9, 86400.0, clock_ms=lambda: TS).open()
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    """The scheduler's monotonic clock."""
    return Clock()


class Made:
    """Schedulers made in a test, shut down after it."""

    def __init__(self) -> None:
        self.items: list[ProbeScheduler] = []


@pytest.fixture
def made() -> Iterator[Made]:
    """Shuts down every scheduler a test built."""
    m = Made()
    yield m
    for s in m.items:
        s.shutdown()


def build(made: Made, probes: list[ScheduledProbe], spool: Spool, clock: Clock, *,
          timetable: Timetable | None = None,
          now: dt.datetime = MONDAY_10H) -> ProbeScheduler:
    """A scheduler with injected clocks."""
    sched = ProbeScheduler(probes, spool, timetable, monotonic=clock, now=lambda: now)
    made.items.append(sched)
    return sched


def spooled_samples(spool: Spool) -> list[list[dict[str, object]]]:
    """The samples of every spooled batch, decoded."""
    return [orjson.loads(b.payload) for b in spool.due(10_000, resend_before_ms=0)]


def test_failing_probe_is_logged_and_counted_others_still_spool(
        made: Made, spool: Spool, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """One probe's exception never stops another's samples reaching the spool."""
    good = CountingProbe(3)
    sched = build(made, [scheduled("core-sw", BrokenProbe()), scheduled("host", good)],
                  spool, clock)
    with caplog.at_level(logging.ERROR, logger="agent.scheduler"):
        assert sched.run_all_once(timeout=WAIT) is True
    assert sched.probe_errors == 1
    assert sched.spool_errors == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["probe core-sw failed: core-sw 192.168.1.2: no answer"]
    batches = spooled_samples(spool)
    assert [len(b) for b in batches] == [3]
    assert [s["ts_ms"] for s in batches[0]] == [TS, TS + 1, TS + 2]
    assert good.calls == 1


def test_run_all_once_runs_every_probe_and_spools_before_returning(
        made: Made, spool: Spool, clock: Clock) -> None:
    """When run_all_once returns, every probe's samples are already in the spool."""
    probes = [CountingProbe(1) for _ in range(5)]
    sched = build(made, [scheduled(f"p{i}", p) for i, p in enumerate(probes)], spool, clock)
    for _ in range(20):  # repeated: the spool must never lag behind the return
        before = spool.stats().depth
        assert sched.run_all_once(timeout=WAIT) is True
        assert spool.stats().depth == before + 5
    assert [p.calls for p in probes] == [20] * 5


def test_run_all_once_prefers_collect_now(made: Made, spool: Spool, clock: Clock) -> None:
    """A forced run uses collect_now when the probe has one; a scheduled run uses collect."""

    class Planned(CountingProbe):
        def __init__(self) -> None:
            super().__init__(0)
            self.now_calls = 0

        def collect_now(self) -> list[Sample]:
            self.now_calls += 1
            return [Sample("speedtest", TS, {"server": "s"}, {"down_mbps": 9.5})]

    probe = Planned()
    sched = build(made, [scheduled("speedtest", probe)], spool, clock)
    assert sched.run_all_once(timeout=WAIT)
    assert (probe.now_calls, probe.calls) == (1, 0)
    assert spooled_samples(spool)[0][0]["kind"] == "speedtest"
    future = sched.submit("speedtest")
    assert future is not None and future.result(WAIT) == []
    assert sched.probes["speedtest"].idle.wait(WAIT)
    assert (probe.now_calls, probe.calls) == (1, 1)


def test_run_all_once_false_when_a_probe_overruns(made: Made, spool: Spool,
                                                  clock: Clock) -> None:
    """run_all_once reports a probe that did not finish within the timeout."""
    held = HeldProbe()
    sched = build(made, [scheduled("slow", held), scheduled("host", CountingProbe())],
                  spool, clock)
    try:
        assert sched.run_all_once(timeout=0.05) is False
    finally:
        held.release.set()
    assert all(p.idle.wait(WAIT) for p in sched.probes.values())
    assert spool.stats().depth == 2


@pytest.mark.parametrize(
    ("now", "runs"),
    [(SATURDAY_10H, 0), (MONDAY_10H, 1),
     (dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC), 0),  # Monday 13:00 local: lunch
     (dt.datetime(2026, 10, 2, 2, 0, tzinfo=dt.UTC), 0)],  # holiday
)
def test_school_hours_only(made: Made, spool: Spool, clock: Clock, now: dt.datetime,
                           runs: int) -> None:
    """A school-hours probe is skipped outside school hours; others always run."""
    tt = Timetable(holidays=["2026-10-01..2026-10-07"])
    av, host = CountingProbe(), CountingProbe()
    sched = build(made, [scheduled("av", av, school_hours_only=True), scheduled("host", host)],
                  spool, clock, timetable=tt, now=now)
    av_future = sched.submit("av")
    assert (av_future is not None) == bool(runs)
    host_future = sched.submit("host")
    assert host_future is not None
    for name in ("av", "host"):
        assert sched.probes[name].idle.wait(WAIT)
    assert (av.calls, host.calls) == (runs, 1)
    assert spool.stats().depth == 1 + runs


def test_forced_run_ignores_school_hours(made: Made, spool: Spool, clock: Clock) -> None:
    """agent run --once measures even outside school hours."""
    av = CountingProbe()
    sched = build(made, [scheduled("av", av, school_hours_only=True)], spool, clock,
                  timetable=Timetable(), now=SATURDAY_10H)
    assert sched.submit("av") is None
    assert sched.run_all_once(timeout=WAIT)
    assert av.calls == 1


@pytest.mark.parametrize(("n", "sizes"), [
    (MAX_SAMPLES_PER_BATCH, [MAX_SAMPLES_PER_BATCH]),
    (MAX_SAMPLES_PER_BATCH + 1, [MAX_SAMPLES_PER_BATCH, 1]),
    (2500, [1000, 1000, 500]),
    (0, []),
])
def test_large_results_split_into_wire_sized_batches(made: Made, spool: Spool, clock: Clock,
                                                     n: int, sizes: list[int]) -> None:
    """More samples than one batch may carry become several batches, none lost."""
    sched = build(made, [scheduled("big", CountingProbe(n))], spool, clock)
    assert sched.run_all_once(timeout=WAIT)
    batches = spool.due(100, resend_before_ms=0)
    assert [b.samples for b in batches] == sizes
    decoded = [s for b in batches for s in orjson.loads(b.payload)]
    assert [s["ts_ms"] for s in decoded] == [TS + i for i in range(n)]
    assert sched.probe_errors == 0


def test_timeout_logged_once_by_tick(made: Made, spool: Spool, clock: Clock,
                                     caplog: pytest.LogCaptureFixture) -> None:
    """A probe past its timeout is logged by name once; its late samples still count."""
    held = HeldProbe()
    sched = build(made, [scheduled("snmp-core", held, timeout=5.0)], spool, clock)
    try:
        assert sched.submit("snmp-core") is not None
        assert held.running.wait(WAIT)
        with caplog.at_level(logging.WARNING, logger="agent.scheduler"):
            clock.t += 5.0 + OVERDUE_GRACE_S
            sched.tick()  # exactly at the timeout and its grace: not yet
            assert sched.probe_errors == 0
            clock.t += 0.5
            sched.tick()
            clock.t += 60.0
            sched.tick()  # still running: not logged again
            assert sched.submit("snmp-core") is None  # overlapping run skipped
        assert sched.probe_errors == 1
        messages = [(r.levelno, r.getMessage()) for r in caplog.records]
        assert messages == [
            (logging.ERROR, "probe snmp-core: still running after its 5s timeout"),
            (logging.WARNING, "probe snmp-core: previous run not finished, skipping this one"),
        ]
    finally:
        held.release.set()
    p = sched.probes["snmp-core"]
    assert p.idle.wait(WAIT)
    assert p.started is None
    assert spool.stats().depth == 1  # late samples are still good samples
    clock.t += 100.0
    sched.tick()
    assert sched.probe_errors == 1


def test_invalid_samples_discarded_and_counted(made: Made, spool: Spool, clock: Clock,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A probe producing a sample the wire refuses loses that batch, counted and named."""

    class Bad:
        def collect(self) -> list[Sample]:
            return [Sample("host", TS, {}, {"cpu_pct": float("nan")})]

    sched = build(made, [scheduled("bad", Bad()), scheduled("host", CountingProbe())],
                  spool, clock)
    with caplog.at_level(logging.ERROR, logger="agent.scheduler"):
        assert sched.run_all_once(timeout=WAIT)
    assert sched.probe_errors == 1
    assert spool.stats().depth == 1
    assert any("probe bad produced an invalid sample" in r.getMessage()
               for r in caplog.records)


def test_spool_failure_counted(made: Made, tmp_path: Path, clock: Clock,
                               caplog: pytest.LogCaptureFixture) -> None:
    """Samples that cannot be spooled are counted as spool errors, not raised."""
    closed = Spool(tmp_path / "closed.db", 10**9, 86400.0).open()
    closed.close()
    sched = build(made, [scheduled("host", CountingProbe(3))], closed, clock)
    with caplog.at_level(logging.ERROR, logger="agent.scheduler"):
        assert sched.run_all_once(timeout=WAIT)
    assert (sched.spool_errors, sched.probe_errors) == (1, 0)
    assert any("3 samples of host lost" in r.getMessage() for r in caplog.records)


def test_start_runs_each_probe_at_once(made: Made, spool: Spool, clock: Clock) -> None:
    """start() registers the probes and runs each immediately."""
    a, b = CountingProbe(), CountingProbe()
    sched = build(made, [scheduled("a", a), scheduled("b", b)], spool, clock)
    sched.start()
    for name in ("a", "b"):
        assert sched.probes[name].idle.wait(WAIT)
    assert (a.calls, b.calls) == (1, 1)
    sched.tick()  # nothing due for another minute
    assert (a.calls, b.calls) == (1, 1)
    assert spool.stats().depth == 2


def test_runs_follow_the_monotonic_clock_not_the_wall_clock(made: Made, spool: Spool,
                                                            clock: Clock) -> None:
    """One run per interval of monotonic time, whatever the wall clock does meanwhile."""
    probe = CountingProbe()
    wall = [MONDAY_10H]
    p = ScheduledProbe("host", probe, 10.0, 5.0, 0.0)
    sched = ProbeScheduler([p], spool, None, monotonic=clock, now=lambda: wall[0])
    made.items.append(sched)
    sched.start()
    runs = [1]
    for step in range(60):  # 60 s of ticks, 1 s apart; the wall clock jumps in between
        if step == 20:
            wall[0] -= dt.timedelta(seconds=60)
        if step == 40:
            wall[0] += dt.timedelta(hours=1)
        clock.t += 1.0
        assert p.idle.wait(WAIT)
        sched.tick()
        runs.append(probe.calls)
    assert p.idle.wait(WAIT)
    assert probe.calls == 7  # at 0, 10, 20, ... 60 s
    assert runs[11] == 2 and runs[21] == 3 and runs[41] == 5


def test_late_tick_runs_once_not_in_a_burst(made: Made, spool: Spool, clock: Clock) -> None:
    """An agent stopped for 5 intervals runs a probe once when it resumes, then on period."""
    probe = CountingProbe()
    p = scheduled("host", probe)
    sched = build(made, [p], spool, clock)
    sched.start()
    assert p.idle.wait(WAIT)
    clock.t += 300.0
    sched.tick()
    assert p.idle.wait(WAIT)
    sched.tick()
    assert probe.calls == 2
    clock.t += 59.9
    sched.tick()
    assert probe.calls == 2
    clock.t += 0.1
    sched.tick()
    assert p.idle.wait(WAIT)
    assert probe.calls == 3


def test_jitter_spreads_periods_within_bounds(made: Made, spool: Spool, clock: Clock) -> None:
    """Periods are interval +- jitter, drawn from the injected generator."""
    import random

    p = ScheduledProbe("host", CountingProbe(), 60.0, 5.0, 6.0)
    sched = ProbeScheduler([p], spool, monotonic=clock, rng=random.Random(7))
    made.items.append(sched)
    periods = [sched._period(p) for _ in range(200)]
    assert min(periods) >= 54.0 and max(periods) <= 66.0
    assert max(periods) - min(periods) > 10.0


def test_timestamps_unique_and_increasing_per_series(made: Made, spool: Spool,
                                                     clock: Clock) -> None:
    """A sample at or before the last of its series (clock stepped back) gets last + 1 ms."""
    sched = build(made, [], spool, clock)
    sched.store("a", [Sample("host", TS, {}, {"cpu_pct": 1.0}),
                      Sample("iface", TS, {"iface": "eth0"}, {"up": True})])
    sched.store("a", [Sample("host", TS - 60_000, {}, {"cpu_pct": 2.0}),  # wall clock went back
                      Sample("host", TS - 59_000, {}, {"cpu_pct": 3.0}),
                      Sample("iface", TS, {"iface": "eth1"}, {"up": True}),  # other series
                      Sample("iface", TS, {"iface": "eth0"}, {"up": False})])
    sched.store("a", [Sample("host", TS + 5_000, {}, {"cpu_pct": 4.0})])
    got = [(s["kind"], s["tags"], s["ts_ms"]) for b in spooled_samples(spool) for s in b]
    assert got == [("host", {}, TS), ("iface", {"iface": "eth0"}, TS),
                   ("host", {}, TS + 1), ("host", {}, TS + 2),
                   ("iface", {"iface": "eth1"}, TS), ("iface", {"iface": "eth0"}, TS + 1),
                   ("host", {}, TS + 5_000)]


def test_batches_split_by_bytes_under_the_wire_limit(made: Made, spool: Spool,
                                                     clock: Clock) -> None:
    """1,000 samples of ~2 KB each (2 MB) become batches whose envelopes fit 256 KiB."""
    big = [Sample("host", TS + i, {}, {f"f{j}": "x" * 250 for j in range(8)})
           for i in range(1000)]
    sched = build(made, [], spool, clock)
    sched.store("big", big)
    batches = spool.due(1000, resend_before_ms=0)
    assert len(batches) > 8
    assert sum(b.samples for b in batches) == 1000
    assert all(len(b.payload) + ENVELOPE_HEAD_MAX <= MAX_PAYLOAD_BYTES for b in batches)
    who = AgentIdentity("d" * 64, "s" * 64, "a" * 64)
    for b in batches:  # the longest ids and numbers still fit
        assert len(wrap_envelope(who, 2**63 - 1, 2**63 - 1, b.payload)) <= MAX_PAYLOAD_BYTES
    decoded = [s["ts_ms"] for b in batches for s in orjson.loads(b.payload)]
    assert decoded == [TS + i for i in range(1000)]
