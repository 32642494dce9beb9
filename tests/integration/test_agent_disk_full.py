"""A full disk under the agent's spool: every sample is stored or counted as dropped, exactly.

The spool lives on a 2 MB tmpfs mounted by the test, with the default ``max_mb`` (64): the disk,
not the spool's own bound, is what fills up, as on a small SD card.  The broker is away while
the agent produces about four times what the disk holds; then the agent is stopped, the rest
of the disk is filled by another file, and a new agent starts on that full spool while
Mosquitto, a collector process and InfluxDB are up.  It must deliver what the spool holds, and
produced = stored in InfluxDB + ``dropped_total``, sample for sample.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.probes.base import wall_clock_ms
from agent.runner import Agent
from agent.scheduler import ScheduledProbe
from common.wire import Sample
from tests.conftest import (
    Services,
    influx_rows,
    start_collector_process,
    start_services,
    wait_until,
)
from tests.integration.test_faults import WHO, CountingProbe, agent_cfg, collector_yaml

# Long fault scenarios: `make test-faults` (README), run by CI beside `make test`.
pytestmark = [pytest.mark.integration, pytest.mark.faults]


class CountedHealth:
    """The agent's own health probe, counting its samples (they can be evicted too)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.produced = 0

    def collect(self) -> list[Sample]:
        """The health sample, counted."""
        out: list[Sample] = self.inner.collect()  # type: ignore[attr-defined]
        self.produced += len(out)
        return out


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the file system is full; returns the bytes written."""
    written = 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError:  # not even room for a new file
        return 0
    try:
        for size in (65536, 4096, 512, 1):  # big blocks first, then every last byte
            try:
                while True:
                    written += os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return written


def start(agent: Agent) -> tuple[threading.Event, threading.Thread]:
    """Run an agent in a thread until the returned event is set."""
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def count(url: str, db: str, measurement: str) -> int:
    """Points of this agent in one measurement."""
    return len(influx_rows(url, db, f"SELECT * FROM {measurement} WHERE agent = '{WHO.agent}'"))


def held_and_dropped(spool: Path) -> tuple[int, int]:
    """Samples in the spool file and its dropped_total, read by another connection."""
    with sqlite3.connect(spool) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        held, dropped = db.execute(
            "SELECT (SELECT COALESCE(SUM(samples), 0) FROM batch), "
            "(SELECT value FROM counter WHERE name = 'dropped_total')").fetchone()
    return int(held), int(dropped)


def test_full_disk_every_sample_stored_or_counted(small_disk: Path, tmp_path: Path, *,
                                                  services: Services, influx_db: str,
                                                  topic_prefix: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Broker away, disk full, agent restarted on the full spool: produced = stored + dropped."""
    broker = start_services(tmp_path / "svc", "mosquitto")
    broker.stop("mosquitto")  # away; it keeps its port for later
    cfg = agent_cfg(small_disk, broker.mqtt_port, topic_prefix)
    assert cfg.spool.max_mb == 64  # the disk is the bound, not the spool
    url = services.influx_url
    # An hour ago: within the collector's time window (it refuses samples over 15 days old).
    probe = CountingProbe(wall_clock_ms() - 3_600_000, per_collect=1000)  # ~70 KB a batch
    health: list[CountedHealth] = []

    def make_agent(interval: float) -> Agent:
        agent = Agent(cfg, probes=[ScheduledProbe("count", probe, interval, 5.0, 0.0)])
        wrapped = CountedHealth(agent.scheduler.probes["agent"].probe)
        agent.scheduler.probes["agent"].probe = wrapped
        health.append(wrapped)
        return agent

    # 1. Broker away: produce ~4 MB of samples into 2 MB of disk.
    first = make_agent(0.1)
    stop, thread = start(first)
    with caplog.at_level(logging.WARNING, logger="agent.spool"):
        wait_until(lambda: len(probe.produced) >= 60_000, 60, "~3 disks' worth produced")
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    full_lines = [r.getMessage() for r in caplog.records if "disk full" in r.getMessage()]
    assert 1 <= len(full_lines) <= 2  # one line a minute, not one per batch
    held, dropped_then = held_and_dropped(small_disk / "spool.db")
    assert held + dropped_then == len(probe.produced) + health[0].produced  # exact on disk
    assert dropped_then > len(probe.produced) // 2  # the disk really was the bound

    # 2. The rest of the disk taken by another file; a new agent starts on the full spool.
    fill(small_disk / "filler")
    assert shutil.disk_usage(small_disk).free < 64 * 1024
    probe.paused.set()  # nothing new, so what lands is exactly what the spool held
    broker.start("mosquitto")
    collector = start_collector_process(collector_yaml(tmp_path, broker.mqtt_port, topic_prefix,
                                                       url, influx_db))
    second = make_agent(3600.0)
    stop, thread = start(second)
    try:
        wait_until(lambda: health[1].produced == 1, 20, "the new agent's health sample")
        wait_until(lambda: thread.is_alive() and second.spool.stats().depth == 0, 60,
                   "the full spool to drain")
        produced = len(probe.produced) + sum(h.produced for h in health)
        dropped = second.spool.stats().dropped_total
        wait_until(lambda: count(url, influx_db, "host") + count(url, influx_db, "agent")
                   + dropped >= produced, 20, "every kept sample in InfluxDB")
        stored_host, stored_agent = count(url, influx_db, "host"), count(url, influx_db, "agent")
        assert stored_host + stored_agent + dropped == produced
        assert dropped == dropped_then  # nothing more lost on the way
        print(f"produced {produced} (host {len(probe.produced)}), stored host {stored_host} "
              f"agent {stored_agent}, dropped_total {dropped}")
    finally:
        stop.set()
        thread.join(15)
        collector.terminate()
        collector.wait(10)
        broker.stop()
