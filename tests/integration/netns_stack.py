"""The whole delivery path across a network-namespace link, for the link tests.

Mosquitto, InfluxDB and the collector run in the server namespace of a
:class:`bench.netlab.ShapedLink`; the agent (and anything between it and the broker) in the client
namespace, so every byte between agent and broker crosses the veth pair, where ``tc`` shapes it
and the test can cut it.  Services in the server namespace bind its own loopback, so the test
process (in the root namespace) talks to InfluxDB through ``ip netns exec``.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.netlab import ShapedLink
from tests.conftest import ROOT, SERVICES, schoolmon_cmd, wait_until

BROKER_PORT = 1883  # the namespace is the test's own: no other listener can hold the port


class NsStack:
    """Processes of one test across one link; ``close`` ends exactly those it started."""

    def __init__(self, link: ShapedLink, tmp: Path) -> None:
        self.link = link
        self.tmp = tmp
        self.svc_dir = tmp / "svc"
        self.influx_url = ""
        self.procs: list[subprocess.Popen[bytes]] = []

    def in_server(self, argv: list[str]) -> list[str]:
        """argv run in the server namespace."""
        return self.link.command(self.link.server_ns, argv)

    def in_client(self, argv: list[str]) -> list[str]:
        """argv run in the client namespace."""
        return self.link.command(self.link.client_ns, argv)

    def spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start a process with stderr (and stdout) to ``log``; it is ended by ``close``."""
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def listening(self, ns: str, host: str, port: int) -> bool:
        """True when something accepts TCP on host:port inside namespace ``ns``."""
        probe = f"import socket; socket.create_connection(({host!r}, {port}), 1).close()"
        return subprocess.run(self.link.command(ns, ["python3", "-c", probe]),
                              capture_output=True, check=False).returncode == 0

    def start_broker(self, extra: str = "") -> None:
        """Mosquitto on every address of the server namespace (its loopback and the veth)."""
        conf = self.tmp / "mosquitto.conf"
        conf.write_text("\n".join([
            "per_listener_settings false",
            f"listener {BROKER_PORT}",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {self.tmp / 'mosquitto.log'}",
            "log_type error", "log_type warning", "log_type notice",
            "user root",
            extra, "",
        ]))
        self.spawn(self.in_server(["mosquitto", "-c", str(conf)]), self.tmp / "mosquitto.out")
        wait_until(lambda: self.listening(self.link.server_ns, "127.0.0.1", BROKER_PORT), 20,
                   "mosquitto in the server namespace")

    def start_influxdb(self) -> None:
        """InfluxDB 1.x by scripts/services.sh, inside the server namespace."""
        out = subprocess.run(self.in_server(["bash", str(SERVICES), "start", str(self.svc_dir),
                                             "influxdb"]),
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        self.influx_url = env["INFLUXDB_URL"]

    def query(self, q: str, db: str = "schoolmon") -> list[dict[str, Any]]:
        """InfluxQL run from inside the server namespace; the series of the first statement."""
        out = subprocess.run(self.in_server([
            "curl", "-sfG", f"{self.influx_url}/query", "--data-urlencode", f"db={db}",
            "--data-urlencode", f"q={q}", "--data-urlencode", "epoch=ms"]),
            capture_output=True, check=True, timeout=60)
        result = orjson.loads(out.stdout)["results"][0]
        assert "error" not in result, result
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def count(self, measurement: str, field: str, where: str = "") -> int:
        """Points of one measurement (counting a field every point has)."""
        clause = f" WHERE {where}" if where else ""
        series = self.query(f'SELECT COUNT("{field}") FROM "{measurement}"{clause}')
        return int(series[0]["values"][0][1]) if series else 0

    def start_collector(self) -> subprocess.Popen[bytes]:
        """`schoolmon collector run` in the server namespace, returned once subscribed."""
        path = self.tmp / "collector.yaml"
        path.write_text(yaml.safe_dump({
            "mqtt": {"host": "127.0.0.1", "port": BROKER_PORT, "username": None,
                     "client_id": "ns-collector", "session_expiry": "1h"},
            "storage": {"kind": "influxdb1", "url": self.influx_url, "database": "schoolmon"},
            "write": {"flush_interval": "200ms", "max_retry_delay": "1s"},
        }))
        log = self.tmp / "collector.log"
        proc = self.spawn(self.in_server(schoolmon_cmd("collector", "run", "-c", str(path))), log)
        wait_until(lambda: b"subscribed" in log.read_bytes(), 30, "the collector to subscribe")
        return proc

    def start_agent(self, config: dict[str, Any]) -> subprocess.Popen[bytes]:
        """`schoolmon agent run` in the client namespace (its log: agent.log)."""
        path = self.tmp / "agent.yaml"
        path.write_text(yaml.safe_dump(config))
        return self.spawn(self.in_client(schoolmon_cmd("agent", "run", "-c", str(path))),
                          self.tmp / "agent.log")

    def close(self) -> None:
        """End every process this stack started (newest first), then InfluxDB."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        subprocess.run(["bash", str(SERVICES), "stop", str(self.svc_dir)], check=False,
                       capture_output=True)


def log_lines_after(log: Path, needle: str, since_wall: float) -> list[float]:
    """Wall-clock times of log lines containing ``needle`` logged at or after ``since_wall``."""
    times = []
    for line in log.read_text(errors="replace").splitlines():
        if needle not in line:
            continue
        with contextlib.suppress(ValueError):
            stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
            t = stamp + int(line[20:23]) / 1000
            if t >= since_wall:
                times.append(t)
    return times
