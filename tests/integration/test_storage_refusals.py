"""Storage refusals and durability, against real InfluxDB 1.6 and VictoriaMetrics: nothing lost.

Each test counts exactly: every sample an agent produced is stored once, or is a counted
dead-letter point; an acked sample survives a SIGKILL of the store.
"""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from agent.config import AgentConfig
from agent.runner import Agent
from agent.scheduler import ScheduledProbe
from collector.alerts.engine import AlertEngine
from collector.alerts.settings import AlertRulesSettings
from collector.config import CollectorConfig
from collector.inventory import Inventory
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Sample
from tests.conftest import (
    Services,
    influx_query,
    start_collector_process,
    start_services,
    wait_until,
)
from tests.integration.alert_scenario import PASSWORD, alert_settings
from tests.peers.smtp_server import free_port, start_smtp

pytestmark = pytest.mark.integration

WHO = AgentIdentity("sr-d", "sr-school", "sr-gw")
START_MS = 1_763_890_000_000  # 2025-11-23


class CountingProbe:
    """Each collect returns ``per_collect`` host samples with new timestamps, and remembers them.

    ``odd_ts``: the third collect adds one ``reach`` sample at that time (another shard).
    """

    def __init__(self, per_collect: int = 5, odd_ts: int | None = None) -> None:
        self.next_ms = START_MS
        self.per_collect = per_collect
        self.odd_ts = odd_ts
        self.collects = 0
        self.produced: list[int] = []
        self.paused = threading.Event()

    def collect(self) -> list[Sample]:
        """New samples (none while paused)."""
        if self.paused.is_set():
            return []
        self.collects += 1
        out = []
        for _ in range(self.per_collect):
            self.next_ms += 1
            self.produced.append(self.next_ms)
            out.append(Sample("host", self.next_ms, {}, {"uptime_s": float(self.next_ms % 100000)}))
        if self.collects == 3 and self.odd_ts is not None:
            # Its own series (the agent keeps each series' times increasing).
            self.produced.append(self.odd_ts)
            out.append(Sample("reach", self.odd_ts, {"target": "odd"}, {"rtt_ms": 1.0}))
        return out


def start_agent(tmp: Path, port: int, prefix: str, probe: CountingProbe,
                interval: float = 1.0) -> tuple[Agent, threading.Event, threading.Thread]:
    """An agent in a thread with a short ack timeout."""
    cfg = AgentConfig.model_validate({
        "agent": {"id": WHO.agent, "school": WHO.school, "district": WHO.district},
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix,
                 "session_expiry": "1h"},
        "spool": {"path": str(tmp / "spool.db"), "max_mb": 64},
        "publish": {"ack_timeout": "3s", "reconnect_max": "2s"},
    })
    agent = Agent(cfg, probes=[ScheduledProbe("count", probe, interval, 5.0, 0.0)])
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    return agent, stop, thread


def collector_yaml(tmp: Path, port: int, prefix: str, storage: dict[str, Any],
                   name: str = "sr-collector") -> Path:
    """collector.yaml for a `schoolmon collector run` process."""
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix, "username": None,
                 "client_id": name, "session_expiry": "1h"},
        "storage": storage,
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s"},
    }))
    return path


def logs(config: Path) -> str:
    """Everything the collector processes of this config logged."""
    return "".join(p.read_text(errors="replace")
                   for p in sorted(config.parent.glob(f"{config.stem}.*.log")))


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and reap."""
    proc.terminate()
    proc.wait(15)


def query(url: str, db: str, q: str, auth: str | None = None) -> list[dict[str, Any]]:
    """InfluxQL rows (epoch ms), with Basic auth when given."""
    qs = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    req = urllib.request.Request(f"{url}/query?{qs}")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        result = orjson.loads(resp.read())["results"][0]
    assert "error" not in result, result
    rows = []
    for s in result.get("series", []):
        rows += [dict(zip(s["columns"], v, strict=True)) for v in s["values"]]
    return rows


def stored_times(url: str, db: str, auth: str | None = None) -> list[int]:
    """Timestamps of the agent's host points."""
    return sorted(int(r["time"]) for r in query(
        url, db, f"SELECT uptime_s FROM host WHERE agent = '{WHO.agent}'", auth))


def drain_and_count(agent: Agent, probe: CountingProbe, stored: Any) -> list[int]:
    """Stop producing, wait for the spool to empty; the stored timestamps."""
    probe.paused.set()
    wait_until(lambda: agent.spool.stats().depth == 0, 60, "the spool to drain")
    wait_until(lambda: len(stored()) >= len(probe.produced), 15, "every sample stored")
    result: list[int] = stored()
    return result


def test_missing_database_then_created_loses_nothing(services: Services, topic_prefix: str,
                                                     tmp_path: Path) -> None:
    """404 database not found: nothing acked, one log line with the fix; created: all stored."""
    db = "sr_missing_" + topic_prefix[1:9]
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix,
                         {"kind": "influxdb1", "url": services.influx_url, "database": db})
    collector = start_collector_process(cfg)
    probe = CountingProbe()
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: "does not exist" in logs(cfg) and len(probe.produced) >= 20, 30,
                   "the refusal logged while samples pile up")
        line = ("storage is not storing writes, nothing is acked meanwhile: InfluxDB says "
                f"database '{db}' does not exist: create it (CREATE DATABASE \"{db}\") or fix "
                "storage.database in collector.yaml")
        assert logs(cfg).count(line) == 1, logs(cfg)  # once, though retried every second
        assert "Traceback" not in logs(cfg)
        assert agent.spool.stats().depth > 0 and agent.publisher.acked_batches == 0
        influx_query(services.influx_url, "", f'CREATE DATABASE "{db}"')
        stored = drain_and_count(agent, probe, lambda: stored_times(services.influx_url, db))
        assert stored == sorted(probe.produced)  # every sample, each once
        print(f"missing database: produced {len(probe.produced)}, stored {len(stored)}")
        assert "storage is back after" in logs(cfg)
        outage = query(services.influx_url, db, "SELECT storage_failing, "
                       "storage_failure_cause FROM schoolmon_collector")
        assert [(r["storage_failing"], r["storage_failure_cause"]) for r in outage][:2] == [
            (1.0, "database_missing"), (0.0, "database_missing")]
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)
        influx_query(services.influx_url, "", f'DROP DATABASE "{db}"')


@pytest.fixture
def auth_influx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """An InfluxDB of this test with authentication on (admin ``adm``)."""
    monkeypatch.setenv("INFLUXDB_AUTH", "adm:right-pw")
    svc = start_services(tmp_path / "svc", "influxdb")
    yield svc
    svc.stop()


def test_wrong_password_then_fixed_loses_nothing(auth_influx: Services, services: Services,
                                                 topic_prefix: str, tmp_path: Path) -> None:
    """401: nothing acked, one line naming the settings; restarted with the right one: all."""
    pw = tmp_path / "influx.pw"
    pw.write_text("wrong-pw\n")
    pw.chmod(0o600)
    storage = {"kind": "influxdb1", "url": auth_influx.influx_url, "database": "schoolmon",
               "username": "adm", "password_file": str(pw)}
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix, storage)
    collector = start_collector_process(cfg)
    probe = CountingProbe()
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: "(401)" in logs(cfg) and len(probe.produced) >= 15, 30,
                   "the refusal logged")
        assert logs(cfg).count("InfluxDB refused the credentials (401): check storage.username"
                               " / password_file (or password_env) in collector.yaml") == 1
        assert "right-pw" not in logs(cfg) and "wrong-pw" not in logs(cfg)
        assert agent.publisher.acked_batches == 0
        collector.kill()  # nothing was acked: a crash and a clean stop leave the same state
        collector.wait(10)
        pw.write_text("right-pw\n")
        collector = start_collector_process(cfg)
        stored = drain_and_count(agent, probe, lambda: stored_times(
            auth_influx.influx_url, "schoolmon", "adm:right-pw"))
        assert stored == sorted(probe.produced)
        print(f"wrong password: produced {len(probe.produced)}, stored {len(stored)}")
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)


def test_field_type_conflict_dead_letters_only_that_point(services: Services, influx_db: str,
                                                          topic_prefix: str,
                                                          tmp_path: Path) -> None:
    """A point conflicting with its shard becomes a schoolmon_reject with its line; rest stored."""
    odd = 1_577_836_800_001  # 2020-01-01: a shard where rtt_ms is already an integer
    req = urllib.request.Request(
        f"{services.influx_url}/write?db={influx_db}&precision=ms",
        data=f"reach rtt_ms=1i {odd - 1}".encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix,
                         {"kind": "influxdb1", "url": services.influx_url,
                          "database": influx_db})
    collector = start_collector_process(cfg)
    probe = CountingProbe(odd_ts=odd)
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: probe.collects >= 5, 30, "five collects")
        probe.paused.set()
        wait_until(lambda: agent.spool.stats().depth == 0, 30, "the spool to drain")
        stored = stored_times(services.influx_url, influx_db)
        dead = query(services.influx_url, influx_db,
                     "SELECT line, detail, agent, \"cause\" FROM schoolmon_reject")
        assert len(probe.produced) == len(stored) + len(dead)  # produced = stored + drops
        assert sorted([*stored, odd]) == sorted(probe.produced) and odd not in stored
        (reject,) = dead
        assert reject["cause"] == "storage_field_type_conflict" and reject["agent"] == WHO.agent
        assert reject["line"].startswith("reach,target=odd,") and "rtt_ms=1.0" in reject["line"]
        assert reject["line"].endswith(f" {odd}") and "field type conflict" in reject["detail"]
        assert logs(cfg).count("refused 1 point(s) for good (field_type_conflict)") == 1
        print(f"conflict: produced {len(probe.produced)}, stored {len(stored)}, "
              f"dead-letter {len(dead)}")
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)


class Victoria:
    """A VictoriaMetrics process of one test: started, SIGKILLed and restarted on one port."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        """Start with the flags services.sh uses (dedup at 1 ms), plus ``extra``."""
        with (self.dir / "vm.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["victoria-metrics", f"-httpListenAddr=127.0.0.1:{self.port}",
                 f"-storageDataPath={self.dir / 'data'}", "-retentionPeriod=100y",
                 "-dedup.minScrapeInterval=1ms", "-search.latencyOffset=0s", *extra],
                stdout=log, stderr=log)

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):
                    return True
            except OSError:
                return False

        wait_until(healthy, 30, "VictoriaMetrics to answer")

    def kill(self) -> None:
        """SIGKILL and reap."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stored(self) -> list[int]:
        """Timestamps of the agent's host_uptime_s samples (in memory or on disk)."""
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10).read()
        qs = urllib.parse.urlencode({"match[]": f'host_uptime_s{{agent="{WHO.agent}"}}'})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{qs}", timeout=10) as resp:
            body = resp.read()
        return sorted(t for line in body.splitlines() if line
                      for t in orjson.loads(line)["timestamps"])


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    """A VictoriaMetrics of this test (stopped at the end)."""
    (tmp_path / "vm").mkdir()
    vm = Victoria(tmp_path / "vm")
    yield vm
    if vm.proc is not None and vm.proc.poll() is None:
        vm.kill()


def vm_storage(vm: Victoria, server: str) -> dict[str, Any]:
    """storage: for VictoriaMetrics through /api/v2/write."""
    return {"kind": "influxdb2", "url": vm.url, "org": "district", "bucket": "schoolmon",
            "server": server}


def test_victoriametrics_refusing_auth_then_open_loses_nothing(
        victoria: Victoria, services: Services, topic_prefix: str, tmp_path: Path) -> None:
    """VictoriaMetrics behind -httpAuth answers 401: not acked, logged; opened: all stored."""
    victoria.start("-httpAuth.username=vm", "-httpAuth.password=secret")
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix,
                         vm_storage(victoria, "victoriametrics"))
    collector = start_collector_process(cfg)
    probe = CountingProbe()
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: "(401)" in logs(cfg) and len(probe.produced) >= 15, 30,
                   "the refusal logged")
        assert logs(cfg).count("VictoriaMetrics refused the credentials (401)") == 1
        assert agent.publisher.acked_batches == 0
        victoria.kill()
        victoria.start()
        stored = drain_and_count(agent, probe, victoria.stored)
        assert stored == sorted(probe.produced)
        print(f"vm auth: produced {len(probe.produced)}, stored {len(stored)}")
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)


def record_acks(agent: Agent) -> set[int]:
    """The timestamps of every batch the agent deletes on an ack, read just before."""
    acked: set[int] = set()
    spool, real_ack = agent.spool, agent.spool.ack

    def ack(ranges: list[tuple[int, int]]) -> int:
        with sqlite3.connect(spool.path) as db:
            for first, last in ranges:
                for (payload,) in db.execute("SELECT payload FROM batch WHERE seq BETWEEN ? "
                                             "AND ?", (first, last)):
                    acked.update(s["ts_ms"] for s in orjson.loads(payload)
                                 if s["kind"] == "host")
        return real_ack(ranges)

    spool.ack = ack  # type: ignore[method-assign]
    return acked


@pytest.mark.parametrize("server", ["victoriametrics", "influxdb"])
def test_victoriametrics_sigkilled_under_load_keeps_every_acked_sample(
        victoria: Victoria, services: Services, topic_prefix: str, tmp_path: Path,
        server: str) -> None:
    """SIGKILL under load: with the snapshot barrier every acked sample survives (and all land
    after the restart); without it (server: influxdb) acked samples are lost."""
    victoria.start()
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix, vm_storage(victoria, server))
    collector = start_collector_process(cfg)
    probe = CountingProbe(per_collect=10)
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe,
                                      interval=0.1)  # 100 samples/s
    acked = record_acks(agent)
    try:
        wait_until(lambda: len(acked) >= 300, 30, "samples acked")
        victoria.kill()
        wait_until(lambda: "unreachable" in logs(cfg), 15, "the collector to see it down")
        acked_at_kill = set(acked)
        victoria.start()
        after_restart = set(victoria.stored())
        lost = acked_at_kill - after_restart
        print(f"vm kill ({server}): acked at kill {len(acked_at_kill)}, in VM after restart "
              f"{len(after_restart)}, acked and lost {len(lost)}")
        if server == "influxdb":
            assert lost, "VictoriaMetrics kept every acked sample without the barrier"
            return
        assert not lost, f"{len(lost)} acked samples lost"
        stored = drain_and_count(agent, probe, victoria.stored)
        assert stored == sorted(probe.produced)  # produced = stored, each once
        print(f"vm kill: produced {len(probe.produced)}, stored {len(stored)}")
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)


def mail_text(message: EmailMessage) -> str:
    """The plain-text part of a mail."""
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_storage_refusing_alert_is_mailed_while_influxdb_refuses(
        services: Services, topic_prefix: str, tmp_path: Path) -> None:
    """The storage_refusing mail goes out by SMTP while InfluxDB refuses; resolved after."""
    db = "sr_alert_" + topic_prefix[1:9]
    (tmp_path / "smtp").mkdir()
    smtp = start_smtp(tmp_path / "smtp", PASSWORD)
    rules = AlertRulesSettings(storage_refusing_after=1.0, group_interval=1.0)
    settings = alert_settings(tmp_path / "alerts.db", smtp, language="en", group_wait="1s")
    engine = AlertEngine(settings, Inventory(districts=[]), rules)
    config = CollectorConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": topic_prefix,
                 "username": None, "client_id": "sr-alert-collector", "session_expiry": "60s"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": db},
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s"},
    })
    collector = Collector(config, build_writer(config), observers=[engine.observe])
    engine.tracker.watch_storage(collector.storage.health)  # the wiring `collector run` needs
    ticking = threading.Event()
    ticker = threading.Thread(target=engine.run, args=(ticking, 0.2), daemon=True)
    collector.start()
    assert collector.connected.wait(10)
    ticker.start()
    probe = CountingProbe()
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: len(smtp.messages) >= 1, 30, "the storage alert mail")
        assert collector.storage.stats.failing and agent.publisher.acked_batches == 0
        firing = smtp.messages[0].message
        assert str(firing["subject"]).strip() == (  # a long subject is folded
            "[schoolmon FIRING] collector (collector): Collector storage refusing writes")
        text = mail_text(firing)
        assert "cause: database does not exist" in text
        assert f'create it (CREATE DATABASE "{db}")' in text
        influx_query(services.influx_url, "", f'CREATE DATABASE "{db}"')
        wait_until(lambda: len(smtp.messages) >= 2, 30, "the resolved mail")
        resolved = str(smtp.messages[1].message["subject"]).strip()
        assert resolved.startswith("[schoolmon RESOLVED] collector (collector)")
        stored = drain_and_count(agent, probe, lambda: stored_times(services.influx_url, db))
        assert stored == sorted(probe.produced)
        assert len(smtp.messages) == 2
        print(f"alert: produced {len(probe.produced)}, stored {len(stored)}, mails 2")
    finally:
        stop.set()
        thread.join(10)
        ticking.set()
        ticker.join(10)
        collector.stop()
        engine.close()
        smtp.stop()
        influx_query(services.influx_url, "", f'DROP DATABASE "{db}"')
