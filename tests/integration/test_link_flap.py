"""Link flapping: the agent's uplink goes down and up 100 times; nothing is lost or leaked.

Mosquitto, InfluxDB and `schoolmon collector run` live in the server namespace of a veth pair,
`schoolmon agent run` (iface and host probes every second) in the client namespace.  The client
end of the veth is taken down and up again 100 times (seeded random timing, ~1.8 s a cycle),
with a keepalive of 1 s so that the longer outages break the MQTT connection and the shorter
ones are mostly ridden out by TCP.  Afterwards the agent must drain its spool, every batch it ever
made must be one point in InfluxDB, and its file descriptors and threads must not have grown.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.netlab import ShapedLink, available
from tests.conftest import schoolmon_cmd, wait_until
from tests.integration.netns_stack import BROKER_PORT, NsStack, log_lines_after

# Long fault scenarios: `make test-faults` (README), run by CI beside `make test`.
pytestmark = [pytest.mark.integration, pytest.mark.faults]

FLAPS = 100
RECONNECT_MAX = 2.0
# paho's connect timeout (5 s) can hold an attempt whose SYN went out just before a cut.
RECONNECT_SLACK = 5.0
FD_SLACK, THREAD_SLACK = 4, 2
LONG_OUTAGE = 2.5


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[NsStack]:
    """Broker, InfluxDB and collector in the server namespace of a 100 Mbit/s link."""
    reason = available()
    assert reason is None, reason
    with ShapedLink(100) as link:
        ns = NsStack(link, tmp_path)
        try:
            ns.start_broker()
            ns.start_influxdb()
            ns.start_collector()
            yield ns
        finally:
            ns.close()


def agent_config(stack: NsStack) -> dict[str, Any]:
    """An agent reaching the broker across the veth, measuring every second."""
    return {
        "agent": {"id": "flap-gw", "school": "flap-school", "district": "flap"},
        "mqtt": {"host": stack.link.server_ip, "port": BROKER_PORT, "keepalive": "1s",
                 "session_expiry": "1h"},
        "spool": {"path": str(stack.tmp / "spool.db"), "max_mb": 64},
        "publish": {"ack_timeout": "3s", "reconnect_min": "1s",
                    "reconnect_max": f"{RECONNECT_MAX:.0f}s"},
        "probes": [{"type": "iface", "interval": "1s"}, {"type": "host", "interval": "1s"}],
    }


class SpoolReader:
    """Reads the agent's spool file from the test process (WAL: never blocks the agent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.max_batch_samples = 0

    def _one(self, sql: str) -> int:
        with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as db:
            row = db.execute(sql).fetchone()
        return int(row[0] or 0) if row else 0

    def depth(self) -> int:
        """Batches waiting, noting the largest batch seen (the one-point-per-batch check)."""
        if not self.path.exists():
            return 0
        try:
            self.max_batch_samples = max(self.max_batch_samples,
                                         self._one("SELECT MAX(samples) FROM batch"))
            return self._one("SELECT COUNT(*) FROM batch")
        except sqlite3.OperationalError:  # schema not created yet
            return 0

    def waiting_upto(self, seq: int) -> int:
        """Batches up to ``seq`` still waiting for their ack."""
        try:
            return self._one(f"SELECT COUNT(*) FROM batch WHERE seq <= {int(seq)}")
        except sqlite3.OperationalError:  # schema not created yet
            return 0

    def last_seq(self) -> int:
        """The highest seq ever given (AUTOINCREMENT keeps it after deletes)."""
        return self._one("SELECT seq FROM sqlite_sequence WHERE name = 'batch'")

    def dropped_total(self) -> int:
        """The spool's exact count of evicted samples."""
        return self._one("SELECT value FROM counter WHERE name = 'dropped_total'")


def outage(flap: int, rng: random.Random) -> float:
    """Seconds the link stays down in one flap.

    Every fifth outage (and the last, longer still) outlasts the broker's 1.5 x keepalive, so the
    connection surely breaks; the others are mostly ridden out by TCP retransmission.
    """
    if flap == FLAPS:
        return 6.0
    return LONG_OUTAGE if flap % 5 == 0 else rng.uniform(0.3, 1.2)


def usage(pid: int) -> tuple[int, int]:
    """Open file descriptors and threads of a process."""
    return (len(list(Path(f"/proc/{pid}/fd").iterdir())),
            len(list(Path(f"/proc/{pid}/task").iterdir())))


def drain_backlog(spool: SpoolReader) -> list[int]:
    """Wait for every batch made so far to be acked; the spool's depths meanwhile and for 5 s
    after (the steady state: how many batches are on their way at once).

    Not "the spool is empty": the probes keep making a batch or two a second, and one is
    nearly always on its way to the collector and back.
    """
    backlog = spool.last_seq()
    depths: list[int] = []

    def drained() -> bool:
        depths.append(spool.depth())
        return spool.waiting_upto(backlog) == 0
    wait_until(drained, 60, f"the spool to drain after the flapping (batches up to {backlog})")
    for _ in range(50):
        depths.append(spool.depth())
        time.sleep(0.1)
    return depths


def test_hundred_flaps_lose_nothing_and_leak_nothing(stack: NsStack) -> None:
    """100 down/up cycles: spool drains, every batch is one point, reconnect in bounds."""
    config = agent_config(stack)
    spool = SpoolReader(stack.tmp / "spool.db")
    agent = stack.start_agent(config)
    log = stack.tmp / "agent.log"
    wait_until(lambda: b"connected to" in log.read_bytes(), 30, "the agent to connect")
    wait_until(lambda: spool.last_seq() >= 10, 30, "the agent to produce batches")

    rng = random.Random(6010)
    samples: dict[int, tuple[int, int]] = {}
    started = time.time()
    for flap in range(1, FLAPS + 1):
        assert agent.poll() is None, log.read_text()[-2000:]
        samples[flap] = usage(agent.pid)
        spool.depth()
        stack.link.cut(True)
        time.sleep(outage(flap, rng))
        stack.link.cut(False)
        link_up = time.time()
        if flap < FLAPS:
            time.sleep(rng.uniform(0.5, 0.8))
    flapping_s = time.time() - started

    # Reconnect after the last flap, within the backoff cap plus one connect attempt.
    wait_until(lambda: bool(log_lines_after(log, "connected to", link_up)),
               RECONNECT_MAX + RECONNECT_SLACK + 2, "the reconnect after the last flap")
    reconnect_s = log_lines_after(log, "connected to", link_up)[0] - link_up
    connects = len(log_lines_after(log, "connected to", started))
    depths = drain_backlog(spool)
    fds_10, threads_10 = samples[10]
    fds_100, threads_100 = samples[FLAPS]
    peak_fds = max(f for n, (f, _) in samples.items() if n >= 10)
    peak_threads = max(t for n, (_, t) in samples.items() if n >= 10)

    # Stop the agent; one `--once` run (same spool) delivers whatever the stop left behind.
    agent.terminate()
    assert agent.wait(15) == 0, log.read_text()[-2000:]
    once = subprocess.run(stack.in_client(schoolmon_cmd(
        "agent", "run", "--once", "--timeout", "30", "-c", str(stack.tmp / "agent.yaml"))),
        capture_output=True, text=True, timeout=90, check=False)
    assert once.returncode == 0, once.stderr[-2000:]

    last = spool.last_seq()
    assert spool.depth() == 0
    assert spool.dropped_total() == 0
    # Every batch of these probes is one sample: one NIC besides lo in the client namespace.
    assert spool.max_batch_samples == 1
    ifaces = stack.query('SHOW TAG VALUES FROM "iface" WITH KEY = "iface"')
    assert [v[1] for v in ifaces[0]["values"]] == [stack.link._veth[1]]
    stored = {m: stack.count(m, f) for m, f in
              (("iface", "up"), ("host", "uptime_s"), ("agent", "rss_mb"))}
    assert sum(stored.values()) == last, (stored, last)
    assert stack.count("agent", "dropped_total", "dropped_total > 0") == 0

    print(f"\nflapping {flapping_s:.0f} s, {connects} connects, reconnect after the last "
          f"flap {reconnect_s:.1f} s, batches {last} = points {stored}, "
          f"fds {fds_10}->{fds_100} (peak {peak_fds}), "
          f"threads {threads_10}->{threads_100} (peak {peak_threads}), spool depth while "
          f"draining {depths[0]}->{depths[-1]} (min {min(depths)}, max {max(depths)})")
    assert reconnect_s <= RECONNECT_MAX + RECONNECT_SLACK
    # Each long outage breaks the connection (typically 20 reconnects: 19 long outages and the
    # last); two close together can share one reconnect, hence the margin.
    assert connects >= FLAPS // 10, "the long outages should have broken the connection"
    assert fds_100 <= fds_10 + FD_SLACK and peak_fds <= fds_10 + FD_SLACK, samples
    assert threads_100 <= threads_10 + THREAD_SLACK and peak_threads <= threads_10 + THREAD_SLACK
