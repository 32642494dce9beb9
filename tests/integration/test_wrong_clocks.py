"""Agents with wrong clocks (libfaketime) through Mosquitto, a collector process and InfluxDB.

Three real ``schoolmon agent run`` processes: one three days slow and one two hours fast (their
wall clock shifted by libfaketime, monotonic time left alone), one right.  libfaketime's
relative offset is exact, so a sample's true time is its own timestamp minus the skew, and the
error of a stored point is (stored - own ts) - (-skew) = applied correction + skew.  Own
timestamps are read from the agents' spools while their batches wait there, no collector
running; a new collector (resuming the corrections from InfluxDB) is then delivered the backlog,
which must land at its own time plus the correction (zero for the right clock).

The broker is not stopped here: under libfaketime 0.9.10, paho's reconnect wait
(``time.sleep``, i.e. ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``) fails with EINVAL
in a shifted process and its network thread dies, so a faked agent cannot reconnect.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import yaml

from collector.measurements import AGENT_CLOCK
from tests.conftest import (
    Services,
    influx_rows,
    schoolmon_cmd,
    start_collector_process,
    wait_until,
)

pytestmark = pytest.mark.integration

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
DISTRICT, SCHOOL = "wc-d", "wc-s"
MINUTE_MS = 60_000


@dataclass
class ClockAgent:
    """One agent process and what the test learns about it."""

    name: str
    skew_ms: int  # agent clock minus true time
    proc: subprocess.Popen[bytes] | None = None
    spool: Path = Path()
    own_ts: set[int] = field(default_factory=set)  # host timestamps read from the spool
    corrected_from_ms: int = 0  # true time of the first correction

    def backlog(self) -> set[int]:
        """Own timestamps of samples taken after the correction started."""
        return {ts for ts in self.own_ts if ts - self.skew_ms > self.corrected_from_ms}


def agent_yaml(tmp: Path, agent: ClockAgent, port: int, prefix: str) -> Path:
    """agent.yaml: a host sample every second, quick resends."""
    agent.spool = tmp / f"{agent.name}.db"
    path = tmp / f"{agent.name}.yaml"
    path.write_text(yaml.safe_dump({
        "agent": {"id": agent.name, "school": SCHOOL, "district": DISTRICT},
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix},
        "spool": {"path": str(agent.spool)},
        "publish": {"ack_timeout": "2s", "resend_max": "2s", "reconnect_max": "1s"},
        "probes": [{"type": "host", "interval": "1s", "jitter": "0s"}],
    }))
    return path


def start_agent(tmp: Path, agent: ClockAgent, port: int, prefix: str) -> None:
    """``schoolmon agent run`` with its wall clock shifted by libfaketime."""
    env = dict(os.environ)
    if agent.skew_ms:
        env.update(LD_PRELOAD=str(FAKETIME_LIB), FAKETIME=f"{agent.skew_ms / 1000:+.0f}",
                   FAKETIME_DONT_FAKE_MONOTONIC="1")
    log = (tmp / f"{agent.name}.log").open("wb")
    agent.proc = subprocess.Popen(
        schoolmon_cmd("agent", "run", "-c", str(agent_yaml(tmp, agent, port, prefix))),
        env=env, stderr=log)


def collector_yaml(tmp: Path, port: int, prefix: str, url: str, db: str) -> Path:
    """collector.yaml: corrections confirmed after 5 s (the default is 20 s)."""
    path = tmp / "collector.yaml"
    path.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix, "username": None,
                 "client_id": "wrong-clocks"},
        "storage": {"kind": "influxdb1", "url": url, "database": db},
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s"},
        "clocks": {"confirm_after": "5s"},
    }))
    return path


def read_spool(agent: ClockAgent) -> int:
    """Record the host timestamps of the batches waiting in the spool; how many batches."""
    if not agent.spool.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{agent.spool}?mode=ro", uri=True, timeout=0.2) as db:
            payloads = [r[0] for r in db.execute("SELECT payload FROM batch")]
    except sqlite3.Error:  # busy, or the schema is still being made
        return 0
    for payload in payloads:
        agent.own_ts.update(s["ts_ms"] for s in orjson.loads(payload) if s["kind"] == "host")
    return len(payloads)


def stored(url: str, db: str, agent: ClockAgent) -> list[int]:
    """Timestamps of the agent's stored host points."""
    rows = influx_rows(url, db, f"SELECT cpu_pct FROM host WHERE agent = '{agent.name}'")
    return sorted(number(r["time"]) for r in rows)


def clock_points(url: str, db: str, agent: ClockAgent) -> list[dict[str, object]]:
    """The agent's agent_clock points, oldest first."""
    return influx_rows(url, db, f'SELECT * FROM "{AGENT_CLOCK.name}" '
                                f"WHERE agent = '{agent.name}'")


def applied(url: str, db: str, agent: ClockAgent) -> int | None:
    """The correction last stored for the agent (None before the first)."""
    points = [p for p in clock_points(url, db, agent) if p["corrected"]]
    if not points:
        return None
    # Samples from before the correction are not the backlog's: a fast clock's were refused
    # as dated in the future (collector/validate.py) and may still sit in its spool.
    agent.corrected_from_ms = number(points[0]["time"])
    return number(points[-1]["applied_ms"])


def number(value: object) -> int:
    """An InfluxDB number (epoch ms or a float field) as an int."""
    assert isinstance(value, int | float), value
    return int(value)


def backlog(agents: list[ClockAgent], samples: int) -> None:
    """Wait until every spool has held ``samples`` host samples, recording their timestamps."""

    def enough(agent: ClockAgent) -> bool:
        read_spool(agent)
        return len(agent.backlog()) >= samples

    wait_until(lambda: all([enough(a) for a in agents]), 30, f"{samples} samples in every spool")


def delivered(url: str, db: str, agents: list[ClockAgent], corrections: dict[str, int]) -> bool:
    """Every recorded own timestamp stored, moved by its agent's correction."""
    for agent in agents:
        points = set(stored(url, db, agent))
        shift = corrections.get(agent.name, 0)
        if any(ts + shift not in points for ts in agent.backlog()):
            return False
    return True


def test_wrong_clocks_are_corrected_right_clock_untouched_backlogs_keep_their_times(
        services: Services, influx_db: str, topic_prefix: str,
        tmp_path: Path) -> None:
    """3 days slow and 2 h fast land at the true time; the right clock is never shifted."""
    assert FAKETIME_LIB.exists(), f"{FAKETIME_LIB} missing: setup.sh installs faketime"
    url, port = services.influx_url, services.mqtt_port
    slow = ClockAgent("wc-slow", -3 * 86_400_000)
    fast = ClockAgent("wc-fast", 2 * 3_600_000)
    right = ClockAgent("wc-right", 0)
    agents = [slow, fast, right]
    wrong = [slow, fast]
    config = collector_yaml(tmp_path, port, topic_prefix, url, influx_db)
    collector = start_collector_process(config)
    start_ms = int(time.time() * 1000)
    try:
        for agent in agents:
            start_agent(tmp_path, agent, port, topic_prefix)
        # Live: each wrong clock is corrected once a message 5 s later agrees.
        wait_until(lambda: all(applied(url, influx_db, a) is not None for a in wrong), 40,
                   "corrections of both wrong clocks")
        corrections = {a.name: applied(url, influx_db, a) or 0 for a in wrong}

        # The collector is killed: a new one resumes the corrections from InfluxDB, so the
        # backlog the agents deliver in its first second is corrected too.
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
        backlog(agents, 8)
        collector = start_collector_process(config)
        wait_until(lambda: delivered(url, influx_db, agents, corrections), 30,
                   "the backlog at its corrected times through the new collector")
        own = {a.name: a.backlog() for a in agents}
        logs = "".join(p.read_text() for p in tmp_path.glob("collector.*.log"))
        assert "agent clock corrections restored for 2 agents" in logs
        end_ms = int(time.time() * 1000)
    finally:
        for agent in agents:
            if agent.proc is not None:
                agent.proc.terminate()
                agent.proc.wait(10)
        collector.terminate()
        collector.wait(10)

    for agent in agents:
        points = set(stored(url, influx_db, agent))
        correction = corrections.get(agent.name, 0)
        # The error of a corrected point: its correction plus the skew (exact by faketime).
        assert abs(correction + agent.skew_ms) < MINUTE_MS, (agent.name, correction)
        assert len(own[agent.name]) >= 8
        missing = sorted(ts for ts in own[agent.name] if ts + correction not in points)
        assert not missing, f"{agent.name}: backlog not at its own ts + {correction}"
        # Every point after the first correction lies within the test's true time (a minute
        # either way); before it, only those the confirmation let through at their own time.
        late = [ts for ts in points if not start_ms - MINUTE_MS <= ts <= end_ms + MINUTE_MS]
        if agent is right:
            assert late == [] and clock_points(url, influx_db, agent) == []
        else:
            # Taken between the start and the correction (5 s of confirmation, more under load).
            assert all(start_ms <= ts - agent.skew_ms <= agent.corrected_from_ms for ts in late)
        print(f"{agent.name}: skew {agent.skew_ms / 1000:+.0f} s, correction "
              f"{correction / 1000:+.3f} s, error {(correction + agent.skew_ms)} ms, "
              f"{len(points)} points, {len(late)} before the correction; backlog "
              f"{len(own[agent.name])} samples")
