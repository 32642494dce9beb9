"""Wall-clock steps under a real ``schoolmon agent run`` (libfaketime): probes keep their rate.

libfaketime fakes the wall clock only (FAKETIME_DONT_FAKE_MONOTONIC=1) and re-reads its offset
from a file on every call (FAKETIME_NO_CACHE=1), so the test steps the agent's clock mid-run by
rewriting that file: -60 s (NTP correcting a fast clock), then +3600 s.  The agent's broker is
away, so every run of its ``host`` probe stays in the spool, one batch each; the test counts
them per window of real time, read from the spool file.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import orjson
import pytest
import yaml

from tests.conftest import schoolmon_cmd, wait_until
from tests.net import free_port

pytestmark = pytest.mark.integration

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
INTERVAL = 0.5
WINDOW = 5.0  # seconds of real time per phase: 10 runs at the configured rate




def host_times(spool: Path) -> list[int]:
    """ts_ms of every spooled host sample, in seq order."""
    if not spool.exists():
        return []
    try:
        with sqlite3.connect(spool, timeout=1.0) as db:
            rows = db.execute("SELECT payload FROM batch ORDER BY seq").fetchall()
    except sqlite3.Error:  # the agent is still creating the schema
        return []
    return [s["ts_ms"] for (p,) in rows for s in orjson.loads(p) if s["kind"] == "host"]


def test_wall_clock_steps_neither_pause_nor_burst_probes(tmp_path: Path) -> None:
    """Runs per window stay at the configured rate across -60 s and +3600 s steps; every
    timestamp of the series is unique and increasing."""
    assert LIBFAKETIME.exists(), f"{LIBFAKETIME} missing: scripts/setup.sh installs Debian faketime"
    spool = tmp_path / "spool.db"
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"id": "clock-gw", "school": "s1", "district": "d1"},
        "mqtt": {"host": "127.0.0.1", "port": free_port(), "topic_prefix": "clk/v1"},
        "spool": {"path": str(spool)},
        "probes": [{"type": "host", "interval": f"{int(INTERVAL * 1000)}ms", "jitter": 0}],
    }))
    offset = tmp_path / "faketime.rc"
    offset.write_text("+0\n")
    env = {**os.environ, "LD_PRELOAD": str(LIBFAKETIME),
           "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_NO_CACHE": "1",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    log = (tmp_path / "agent.log").open("wb")
    agent = subprocess.Popen(schoolmon_cmd("agent", "run", "-c", str(config)), env=env,
                             stderr=log)
    counts = []
    try:
        wait_until(lambda: len(host_times(spool)) >= 1, 30, "the first host run")
        for step in ("+0", "-60", "+3540"):  # cumulative: back 60 s, then forward 3600 s
            offset.write_text(step + "\n")
            start, before = time.monotonic(), len(host_times(spool))
            end = start + WINDOW
            wait_until(lambda e=end: time.monotonic() >= e, WINDOW + 5, "the window to pass",
                       interval=0.05)
            counts.append(len(host_times(spool)) - before)
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()[-2000:]
    finally:
        agent.terminate()
        agent.wait(10)
        log.close()
    expected = WINDOW / INTERVAL
    print(f"host runs per {WINDOW:.0f} s window (before, after -60 s, after +3600 s): {counts}")
    assert all(expected - 2 <= n <= expected + 2 for n in counts), counts
    times = host_times(spool)
    assert times == sorted(set(times))  # unique and increasing despite the step back
    # The step forward shows in the timestamps (they follow the wall clock) ...
    assert max(b - a for a, b in itertools.pairwise(times)) > 3_500_000
    # ... and the step back does not: the samples after it were stamped last + 1 ms.
    assert sum(1 for a, b in itertools.pairwise(times) if b - a == 1) >= expected - 2
