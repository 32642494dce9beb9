"""Helpers of the storage tests: a counting agent, collector processes, a private
VictoriaMetrics, exact reads of what was stored and of what the agent saw acked."""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

from agent.config import AgentConfig
from agent.runner import Agent
from agent.scheduler import ScheduledProbe
from common.wire import AgentIdentity, Sample
from tests.conftest import wait_until
from tests.peers.smtp_server import free_port

WHO = AgentIdentity("sr-d", "sr-school", "sr-gw")


class CountingProbe:
    """Each collect returns ``per_collect`` host samples with new timestamps, and remembers them.

    ``odd_ts``: the third collect adds one ``reach`` sample at that time.
    """

    def __init__(self, per_collect: int = 5, odd_ts: int | None = None) -> None:
        # Recent: the collector refuses samples more than 15 days old.
        self.next_ms = int(time.time() * 1000) - 60_000
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


def vm_storage(vm: Victoria, server: str) -> dict[str, Any]:
    """storage: for VictoriaMetrics through /api/v2/write."""
    return {"kind": "influxdb2", "url": vm.url, "org": "district", "bucket": "schoolmon",
            "server": server}


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
