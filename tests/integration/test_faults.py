"""Faults with real processes killed for real: no sample is lost, none is stored twice."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from agent.config import AgentConfig
from agent.runner import Agent
from agent.scheduler import ScheduledProbe
from agent.spool import Spool
from collector.config import CollectorConfig
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Envelope, Sample, Topics, encode_envelope, encode_samples
from tests.conftest import (
    Services,
    influx_rows,
    schoolmon_cmd,
    start_collector_process,
    start_services,
    wait_until,
)

# Long fault scenarios: `make test-faults` (README), run by CI beside `make test`.
pytestmark = [pytest.mark.integration, pytest.mark.faults]

WHO = AgentIdentity("f-d", "f-school", "f-gw")


# Yesterday at 00:00 UTC: recent enough for the collector's window (write.max_sample_age), and
# a fixed base for the timestamps each test counts.
RECENT_MS = (int(time.time()) // 86_400 - 1) * 86_400_000

class CountingProbe:
    """Each collect returns one new sample with a unique timestamp, and remembers it."""

    def __init__(self, start_ms: int, per_collect: int = 1) -> None:
        self.next_ms = start_ms
        self.per_collect = per_collect
        self.produced: list[int] = []
        self.paused = threading.Event()

    def collect(self) -> list[Sample]:
        """One host sample per call (none while paused)."""
        if self.paused.is_set():
            return []
        out = []
        for _ in range(self.per_collect):
            self.next_ms += 1
            self.produced.append(self.next_ms)
            out.append(Sample("host", self.next_ms, {}, {"uptime_s": self.next_ms % 100000}))
        return out


def agent_cfg(tmp: Path, port: int, prefix: str, **publish: Any) -> AgentConfig:
    """Agent config with a short ack timeout."""
    return AgentConfig.model_validate({
        "agent": {"id": WHO.agent, "school": WHO.school, "district": WHO.district},
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix,
                 "session_expiry": "1h"},
        "spool": {"path": str(tmp / "spool.db"), "max_mb": 64},
        "publish": {"ack_timeout": "3s", "reconnect_max": "2s", **publish},
    })


def collector_yaml(tmp: Path, port: int, prefix: str, url: str, db: str, *,
                   client_id: str = "fault-collector") -> Path:
    """collector.yaml for a subprocess collector."""
    path = tmp / f"{client_id}.yaml"
    path.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix, "username": None,
                 "client_id": client_id, "session_expiry": "1h"},
        "storage": {"kind": "influxdb1", "url": url, "database": db},
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s"},
    }))
    return path


def _spooled_samples(agent: Agent) -> int:
    """Samples held in an agent's spool (its batches' sample counts added up)."""
    row = agent.spool.db.execute("SELECT COALESCE(SUM(samples), 0) FROM batch").fetchone()
    return int(row[0])


def spool_depth(path: Path) -> int:
    """Batches in a spool file, read with a separate connection."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM batch").fetchone()[0])


def spool_depth_ro(path: Path) -> int:
    """Batches in a spool, without creating the file or waiting on a writer's lock."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=0.2) as db:
            return int(db.execute("SELECT COUNT(*) FROM batch").fetchone()[0])
    except sqlite3.Error:  # the agent is still creating its schema
        return 0


def stored_times(url: str, db: str) -> list[int]:
    """Timestamps of the agent's host points."""
    rows = influx_rows(url, db, f"SELECT uptime_s FROM host WHERE agent = '{WHO.agent}'")
    return sorted(int(r["time"]) for r in rows)  # type: ignore[call-overload]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Services]:
    """A Mosquitto of this test's own, so killing it disturbs no other test."""
    svc = start_services(tmp_path / "svc", "mosquitto")
    yield svc
    svc.stop()


def run_agent(agent: Agent) -> tuple[threading.Event, threading.Thread]:
    """Run an agent in a thread until the returned event is set."""
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def kill9(svc: Services, name: str) -> None:
    """SIGKILL a service started by services.sh (no clean shutdown)."""
    pid = int((svc.dir / f"{name}.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(pid) or
               psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 10, f"{name} to die")


def drain_and_check(agent: Agent, probe: CountingProbe, url: str, db: str,
                    timeout: float = 60) -> None:
    """Stop producing, wait for the spool to empty, and compare stored with produced."""
    probe.paused.set()
    wait_until(lambda: agent.spool.stats().depth == 0, timeout, "the spool to drain")
    wait_until(lambda: len(stored_times(url, db)) >= len(probe.produced), 10,
               "every sample in InfluxDB")
    assert stored_times(url, db) == sorted(probe.produced)  # all there, each exactly once


def test_broker_killed_and_restarted_loses_nothing(own_broker: Services, services: Services,
                                                   influx_db: str, topic_prefix: str,
                                                   tmp_path: Path) -> None:
    """Mosquitto SIGKILLed while the agent produces, restarted later: every sample lands."""
    port = own_broker.mqtt_port
    collector = start_collector_process(collector_yaml(tmp_path, port, topic_prefix,
                                                       services.influx_url, influx_db))
    probe = CountingProbe(RECENT_MS, per_collect=5)
    agent = Agent(agent_cfg(tmp_path, port, topic_prefix),
                  probes=[ScheduledProbe("count", probe, 1.0, 5.0, 0.0)])
    stop, thread = run_agent(agent)
    try:
        wait_until(lambda: len(stored_times(services.influx_url, influx_db)) >= 10, 30,
                   "first samples stored")
        kill9(own_broker, "mosquitto")
        produced_at_kill = len(probe.produced)
        wait_until(lambda: len(probe.produced) >= produced_at_kill + 15, 30,
                   "samples produced while the broker is down")
        assert agent.spool.stats().depth > 0
        own_broker.start("mosquitto")
        drain_and_check(agent, probe, services.influx_url, influx_db)
    finally:
        stop.set()
        thread.join(10)
        collector.terminate()
        collector.wait(10)


def test_agent_sigkilled_20_times_keeps_every_spooled_sample(tmp_path: Path) -> None:
    """Uplink down, agent killed at random moments: committed batches survive, DB intact."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump({
        "agent": {"id": "k-gw", "school": "k", "district": "k"},
        "mqtt": {"host": "127.0.0.1", "port": dead_port},
        "spool": {"path": str(tmp_path / "spool.db")},
        "probes": [{"type": "host", "interval": "1s", "jitter": "0s"},
                   {"type": "iface", "interval": "1s", "jitter": "0s"}],
    }))
    rng = random.Random(20)
    seen: set[int] = set()
    for _ in range(20):
        proc = subprocess.Popen(schoolmon_cmd("agent", "run", "-c", str(cfg)),
                                stderr=subprocess.DEVNULL)
        known = len(seen)
        wait_until(lambda p=proc, n=known: spool_depth_ro(tmp_path / "spool.db") > n
                   or p.poll() is not None, 20, "this run's first batch")
        assert proc.poll() is None, "the agent exited by itself"
        time.sleep(rng.uniform(0.0, 1.5))  # a random moment in the agent's life is the point
        with sqlite3.connect(tmp_path / "spool.db") as db:
            before = {r[0] for r in db.execute("SELECT seq FROM batch")}
        proc.kill()
        proc.wait(10)
        with sqlite3.connect(tmp_path / "spool.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            after = {r[0] for r in db.execute("SELECT seq FROM batch")}
        assert before <= after  # nothing committed was lost
        seen |= before
    assert seen <= after
    assert len(after) >= 20  # every run spooled something before it died


def test_collector_sigkilled_mid_stream_loses_nothing(own_broker: Services, services: Services,
                                                      influx_db: str, topic_prefix: str,
                                                      tmp_path: Path) -> None:
    """Collector SIGKILLed while batches flow; a new one takes over; all land once."""
    port = own_broker.mqtt_port
    path = collector_yaml(tmp_path, port, topic_prefix, services.influx_url, influx_db)
    collector = start_collector_process(path)
    probe = CountingProbe(RECENT_MS + 100_000, per_collect=20)
    agent = Agent(agent_cfg(tmp_path, port, topic_prefix),
                  probes=[ScheduledProbe("count", probe, 1.0, 5.0, 0.0)])
    stop, thread = run_agent(agent)
    try:
        wait_until(lambda: len(stored_times(services.influx_url, influx_db)) >= 20, 30,
                   "first samples stored")
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
        wait_until(lambda: agent.spool.stats().depth >= 3, 30, "a backlog while it is dead")
        collector = start_collector_process(path)
        drain_and_check(agent, probe, services.influx_url, influx_db)
    finally:
        stop.set()
        thread.join(10)
        collector.terminate()
        collector.wait(10)


def test_collector_down_for_more_than_1000_messages(own_broker: Services, services: Services,
                                                    influx_db: str, topic_prefix: str,
                                                    tmp_path: Path) -> None:
    """More than Mosquitto's per-client queue (1000) piles up: the agent's resend covers it."""
    port = own_broker.mqtt_port
    path = collector_yaml(tmp_path, port, topic_prefix, services.influx_url, influx_db)
    collector = start_collector_process(path)  # creates its persistent session, then dies
    collector.send_signal(signal.SIGKILL)
    collector.wait(10)
    # A backlog of 1500 batches, as after a long outage.
    cfg = agent_cfg(tmp_path, port, topic_prefix, max_inflight=1000)
    spool = Spool(cfg.spool.path, 2**30, 86400.0).open()
    produced = []
    for i in range(1500):
        ts = RECENT_MS + 200_000 + i
        produced.append(ts)
        spool.append(encode_samples([Sample("host", ts, {}, {"uptime_s": i})]), 1)
    spool.close()
    probe = CountingProbe(RECENT_MS + 300_000)
    probe.paused.set()
    probe.produced = produced
    agent = Agent(cfg, probes=[ScheduledProbe("count", probe, 3600.0, 5.0, 0.0)])
    stop, thread = run_agent(agent)
    try:
        wait_until(lambda: agent.publisher.published_batches >= 1500, 60, "backlog published")
        collector = start_collector_process(path)
        drain_and_check(agent, probe, services.influx_url, influx_db, timeout=120)
    finally:
        stop.set()
        thread.join(10)
        collector.terminate()
        collector.wait(10)


def test_two_collectors_share_and_survive_one_killed(own_broker: Services, services: Services,
                                                     influx_db: str, topic_prefix: str,
                                                     tmp_path: Path) -> None:
    """Two collectors on $share: both take traffic; one SIGKILLed, the other takes all."""
    port = own_broker.mqtt_port
    first = start_collector_process(collector_yaml(tmp_path, port, topic_prefix,
                                                   services.influx_url, influx_db, client_id="c1"))
    cfg2 = CollectorConfig.model_validate(yaml.safe_load(collector_yaml(
        tmp_path, port, topic_prefix, services.influx_url, influx_db, client_id="c2").read_text()))
    second = Collector(cfg2, build_writer(cfg2))
    second.start()
    assert second.connected.wait(10)
    probe = CountingProbe(RECENT_MS + 400_000, per_collect=10)
    agent = Agent(agent_cfg(tmp_path, port, topic_prefix),
                  probes=[ScheduledProbe("count", probe, 1.0, 5.0, 0.0)])
    stop, thread = run_agent(agent)
    try:
        wait_until(lambda: len(stored_times(services.influx_url, influx_db)) >= 60, 60,
                   "traffic through both")
        assert second.accepted_messages > 0  # the share group split the load
        share_before = second.accepted_messages
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        wait_until(lambda: second.accepted_messages >= share_before + 5, 30,
                   "the survivor to take all traffic")
        drain_and_check(agent, probe, services.influx_url, influx_db)
    finally:
        stop.set()
        thread.join(10)
        second.stop()
        if first.poll() is None:
            first.terminate()


def test_bad_input_storm_keeps_memory_bounded(own_broker: Services, services: Services,
                                              influx_db: str, topic_prefix: str,
                                              tmp_path: Path) -> None:
    """10,000 malformed messages mixed with valid ones: all valid land, rejects counted."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    port = own_broker.mqtt_port
    collector = start_collector_process(collector_yaml(tmp_path, port, topic_prefix,
                                                       services.influx_url, influx_db))
    try:
        topics = Topics(topic_prefix)
        topic = topics.data(WHO)
        proc = psutil.Process(collector.pid)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="storm",
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", port)
        client.loop_start()
        rng = random.Random(13)
        valid_ts = []
        rss_after_warmup = 0
        for i in range(10_000):
            if i == 1000:
                rss_after_warmup = proc.memory_info().rss
            junk = rng.choice([b"{", b"null", b'{"v": 2}', bytes(rng.randrange(256)
                               for _ in range(rng.randrange(1, 300)))])
            last = client.publish(topic, junk, qos=1)
            if i % 100 == 0:
                ts = RECENT_MS + 500_000 + i
                valid_ts.append(ts)
                info = client.publish(topic, encode_envelope(Envelope(
                    WHO.district, WHO.school, WHO.agent, i, ts,
                    [Sample("host", ts, {}, {"uptime_s": i})])), qos=1)
                info.wait_for_publish(10)
        last.wait_for_publish(30)
        client.disconnect()
        client.loop_stop()
        wait_until(lambda: len(stored_times(services.influx_url, influx_db)) >= len(valid_ts),
                   60, "valid messages stored")
        assert stored_times(services.influx_url, influx_db) == valid_ts
        wait_until(lambda: sum(int(r["count"]) for r in influx_rows(  # type: ignore[call-overload]
            services.influx_url, influx_db,
            "SELECT COUNT(count) FROM schoolmon_reject GROUP BY cause")) == 10_000, 60,
            "every reject stored")
        assert collector.poll() is None
        rows = influx_rows(services.influx_url, influx_db,
                           "SELECT COUNT(count) FROM schoolmon_reject GROUP BY cause")
        assert {r["cause"] for r in rows} >= {"json", "version"}
        growth_mb = (proc.memory_info().rss - rss_after_warmup) / 2**20
        assert growth_mb < 20, f"collector grew {growth_mb:.1f} MB during the storm"
        assert collector.poll() is None  # still running
    finally:
        collector.terminate()
        collector.wait(10)


def test_disk_full_is_a_clear_error_and_the_agent_recovers(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    """Spool on a small tmpfs filled to the brim: oldest evicted and counted, no crash, recovery."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        cfg = agent_cfg(mount, 1, "x/v1")
        probe = CountingProbe(RECENT_MS + 600_000, per_collect=50)
        agent = Agent(cfg, probes=[ScheduledProbe("count", probe, 3600.0, 5.0, 0.0)])
        agent.spool.open()
        agent.scheduler.store("count", probe.collect())
        filler = mount / "filler"
        with filler.open("wb") as f:  # fill the file system completely
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        for _ in range(200):  # keep producing until SQLite hits the full disk
            agent.scheduler.store("count", probe.collect())
            if agent.spool.stats().dropped_total:
                break
        # The full disk costs the oldest samples, counted exactly; the newest are kept.
        stats = agent.spool.stats()
        assert stats.dropped_total > 0
        assert stats.depth > 0
        assert any("disk full" in r.getMessage() and "spool" in r.getMessage()
                   for r in caplog.records if r.levelname == "WARNING")
        assert len(probe.produced) == _spooled_samples(agent) + stats.dropped_total
        filler.unlink()  # space returns
        errors = agent.scheduler.spool_errors
        depth = agent.spool.stats().depth
        agent.scheduler.store("count", probe.collect())
        assert agent.scheduler.spool_errors == errors
        assert agent.spool.stats().depth > depth
        assert len(probe.produced) == _spooled_samples(agent) + agent.spool.stats().dropped_total
        with sqlite3.connect(cfg.spool.path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        agent.spool.close()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
