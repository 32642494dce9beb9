"""Messages per school-hour with and without publish.linger (issue 11 part 3).

The gateway agent of configs/agent.example.yaml and the classroom agent of
configs/agent.classroom.example.yaml, each run for a simulated school hour (after 10 minutes of
warm-up) by the agent's own scheduler, spool (a real SQLite file) and publisher, on injected
clocks: probes are stand-ins returning as many samples per run as bench/capacity_table.py
counts for the example settings; the publisher's transport counts every message and acks it at
once.  Once with ``publish.linger: 0`` (one message per probe run, as before the setting) and
once with the role's default; the reduction is the ratio of the two in the same run.  The
speed test (4 tests a day) runs no test in the simulated hour in either case.

Run: .venv/bin/python -m bench.agent_linger     (writes its section of docs/benchmarks.md)
"""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.publisher import Publisher
from agent.runner import AGENT_SAMPLE_INTERVAL
from agent.scheduler import ProbeScheduler, ScheduledProbe
from agent.spool import Spool
from bench.capacity_table import CLASSROOMS, example, samples_per_run
from bench.report import machine, write_section
from common.wire import Sample, decode_envelope

STEP_S = 0.2  # the agent's main loop: tick and pump every 200 ms
WARMUP_S = 600.0
HOUR_S = 3600.0
WALL0_MS = 1_796_608_800_000  # 2026-12-07 10:00 Asia/Shanghai, a Monday in school hours


class SimClock:
    """Simulated time in seconds since the start."""

    def __init__(self) -> None:
        self.t = 0.0

    def mono_ms(self) -> int:
        """Monotonic ms."""
        return int(self.t * 1000)

    def wall_ms(self) -> int:
        """Wall-clock ms."""
        return WALL0_MS + int(self.t * 1000)

    def now(self) -> dt.datetime:
        """The wall clock as a datetime (school hours)."""
        return dt.datetime.fromtimestamp(self.wall_ms() / 1000, dt.UTC)


class StandIn:
    """A probe that returns ``n`` samples stamped with the simulated wall clock."""

    def __init__(self, name: str, n: int, clock: SimClock) -> None:
        self.name, self.n, self.clock = name, n, clock

    def collect(self) -> list[Sample]:
        """``n`` samples of one run."""
        ts = self.clock.wall_ms()
        # One series: the scheduler makes their times unique (+1 ms each), as for real runs.
        return [Sample("host", ts, {}, {"cpu_pct": 1.0}) for _ in range(self.n)]


class Counter:
    """A connected transport: counts messages and samples, and acks each at once."""

    def __init__(self, spool: Spool, clock: SimClock) -> None:
        self.spool, self.clock = spool, clock
        self.messages = self.samples = 0
        self.waits_ms: list[int] = []  # per sample: publish time - its timestamp

    def publish(self, _topic: str, payload: bytes, qos: int = 0) -> Any:
        """Count what the measured hour publishes (messages) and produces (samples); ack."""
        env = decode_envelope(payload)
        start, end = WALL0_MS + WARMUP_S * 1000, WALL0_MS + (WARMUP_S + HOUR_S) * 1000
        self.messages += start <= env.sent_ms < end
        hour = [s for s in env.samples if start <= s.ts_ms < end]
        self.samples += len(hour)
        # The scheduler adds 1 ms per sample of a series in one run: not a wait.
        self.waits_ms += [max(0, env.sent_ms - s.ts_ms) for s in hour]
        self.spool.ack([(env.seq, env.seq)])
        return type("Info", (), {"rc": 0})()


def stand_ins(config: AgentConfig, clock: SimClock) -> list[ScheduledProbe]:
    """The config's probes (names, intervals, jitter, school-hours flag) with stand-ins."""
    out = []
    for p in config.probes:
        name = p.instance_name(p.type)
        n = 0 if p.type == "speedtest" else int(samples_per_run(p))
        out.append(ScheduledProbe(name, StandIn(name, n, clock), p.interval, p.run_timeout(),
                                  p.jitter if p.jitter is not None else p.interval * 0.1,
                                  school_hours_only=p.school_hours_only))
    out.append(ScheduledProbe("agent", StandIn("agent", 1, clock), AGENT_SAMPLE_INTERVAL,
                              10.0, 5.0))
    return out


@dataclass(frozen=True)
class Hour:
    """One agent's school hour."""

    linger_s: float
    messages: int
    samples: int
    max_wait_s: float
    mean_wait_s: float


def school_hour(config: AgentConfig, linger_s: float, seed: int = 1) -> Hour:
    """Run one agent for the warm-up and a school hour; count the hour's messages."""
    config = config.model_copy(update={"publish": config.publish.model_copy(
        update={"linger": linger_s})})
    clock = SimClock()
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp) / "spool.db", 64 * 2**20, 14 * 86400.0,
                      clock_ms=clock.wall_ms, mono_ms=clock.mono_ms).open()
        probes = stand_ins(config, clock)
        scheduler = ProbeScheduler(probes, spool, config.timetable, monotonic=lambda: clock.t,
                                   now=clock.now, rng=random.Random(seed))
        pub = Publisher(config, spool, clock_ms=clock.wall_ms)
        net = Counter(spool, clock)
        pub.use_client(net)
        scheduler.start()
        try:
            while clock.t < WARMUP_S + HOUR_S + 120:  # past the hour: its last samples go
                scheduler.tick()
                for p in probes:  # runs finish "at once": their samples are spooled now
                    p.idle.wait(10)
                pub.pump()
                clock.t += STEP_S
        finally:
            scheduler.shutdown()
            spool.close()
    waits = net.waits_ms or [0]
    return Hour(linger_s, net.messages, net.samples, max(waits) / 1000,
                sum(waits) / len(waits) / 1000)


def main() -> None:
    """Measure both agents with linger 0 and their default; write the section."""
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, AgentConfig, Hour, Hour]] = []
    for label, name in (("gateway", "agent.example.yaml"),
                        ("classroom PC", "agent.classroom.example.yaml")):
        config = example(name)
        rows.append((label, config, school_hour(config, 0.0), school_hour(config,
                                                                        config.linger_s)))
    load_after = os.getloadavg()[0]
    gw, room = rows[0], rows[1]
    school_before = gw[2].messages + CLASSROOMS * room[2].messages
    school_after = gw[3].messages + CLASSROOMS * room[3].messages
    reduction = 1 - school_after / school_before
    lines = [
        f"{machine()}; load average {load_before:.1f} before, {load_after:.1f} after (shared "
        f"machine; the figures are counts, not timings: the load does not change them). "
        f"Simulated school hour after {WARMUP_S / 60:.0f} min of warm-up, the agent's "
        f"scheduler, spool (SQLite) and publisher on injected clocks, probes replaced by "
        f"stand-ins returning the samples `bench/capacity_table.py` counts per run; every "
        f"message acked at once. `bench/agent_linger.py`, {time.monotonic() - started:.0f} s.",
        "",
        "| agent (example config) | role | linger | messages/h | samples/h | samples/message "
        "| longest wait | mean wait |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, config, *hours in rows:
        for h in hours:
            lines.append(
                f"| {label} | {config.agent.role} | {h.linger_s:.0f} s | {h.messages:,} | "
                f"{h.samples:,} | {h.samples / max(h.messages, 1):.1f} | {h.max_wait_s:.1f} s "
                f"| {h.mean_wait_s:.1f} s |")
    lines += ["", f"A school (the gateway + {CLASSROOMS} classroom PCs): **{school_before:,} "
              f"messages an hour with linger 0, {school_after:,} with the defaults: "
              f"{reduction:.0%} fewer** (goal >= 50 %), for the same "
              f"{gw[2].samples + CLASSROOMS * room[2].samples:,} samples an hour "
              f"({gw[3].samples + CLASSROOMS * room[3].samples:,} with the linger). The longest "
              f"wait is the linger plus the agent's 200 ms loop."]
    body = "\n".join(lines)
    print(body)
    write_section("agent_linger", "## Messages per school: publish.linger\n\n" + body)


if __name__ == "__main__":
    main()
