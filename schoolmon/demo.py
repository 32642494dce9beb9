"""``schoolmon demo``: a whole district-in-a-box on this machine, showing data land in InfluxDB.

Starts Mosquitto and InfluxDB 1.x with scripts/services.sh (loopback, free ports, data in a
work directory), a collector and an agent measuring this machine, both as real processes, and
prints what landed while it runs and at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

SERVICES = Path(__file__).resolve().parents[1] / "scripts" / "services.sh"
KINDS = ("iface", "host", "reach", "speedtest", "agent")


def free_port() -> int:
    """A free loopback TCP port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 30.0) -> None:
    """Until something accepts connections on the loopback port."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)


def read_env(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines of services.env."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def influx_query(url: str, db: str, query: str) -> list[dict[str, object]]:
    """Run an InfluxQL query; returns the series of the first statement."""
    import urllib.parse
    import urllib.request

    qs = urllib.parse.urlencode({"db": db, "q": query, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{qs}", timeout=10) as resp:
        body = orjson.loads(resp.read())
    result = body["results"][0]
    if "error" in result:
        raise RuntimeError(result["error"])
    series: list[dict[str, object]] = result.get("series", [])
    return series


def write_configs(workdir: Path, env: dict[str, str],
                  speedtest_url: str) -> tuple[Path, Path]:
    """collector.yaml and agent.yaml for the local stack."""
    mqtt = {"host": env["MQTT_HOST"], "port": int(env["MQTT_PORT"])}
    collector = {
        "mqtt": {**mqtt, "username": None, "client_id": "demo-collector"},
        "storage": {"kind": "influxdb1", "url": env["INFLUXDB_URL"], "database": "schoolmon"},
    }
    agent = {
        "agent": {"id": "demo-gw", "school": "demo-school", "district": "demo"},
        "mqtt": {**mqtt, "session_expiry": "1h"},
        "spool": {"path": str(workdir / "spool.db"), "max_mb": 16},
        "publish": {"ack_timeout": "10s"},
        "probes": [
            {"type": "iface", "interval": "2s"}, {"type": "host", "interval": "5s"},
            {"type": "reach", "interval": "5s", "count": 3, "timeout": "1s", "targets": [
                {"name": "broker", "host": "127.0.0.1", "role": "district", "method": "tcp",
                 "port": int(env["MQTT_PORT"])},
                {"name": "loopback", "host": "127.0.0.1", "role": "gateway", "method": "icmp"}]},
            {"type": "speedtest", "interval": "3s", "servers": [speedtest_url],
             "duration": "2s", "streams": 2,
             "run_at_start": True, "daily_budget_mb": 4000},
        ],
    }
    paths = workdir / "collector.yaml", workdir / "agent.yaml"
    for path, data in zip(paths, (collector, agent), strict=True):
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return paths


def point_count(url: str, kind: str) -> int:
    """Points stored for one kind (the largest per-field count)."""
    series = influx_query(url, "schoolmon", f'SELECT COUNT(*) FROM "{kind}"')
    if not series:
        return 0
    row = series[0]["values"][0]  # type: ignore[index]
    return max((v for v in row[1:] if isinstance(v, int)), default=0)


def summary(url: str) -> list[str]:
    """Points per kind and the latest values, as lines to print."""
    lines = []
    for kind in KINDS:
        n = point_count(url, kind)
        last = influx_query(url, "schoolmon", f'SELECT * FROM "{kind}" ORDER BY time DESC LIMIT 1')
        fields = ""
        if last:
            cols, vals = last[0]["columns"], last[0]["values"][0]  # type: ignore[index]
            shown = {c: v for c, v in zip(cols, vals, strict=True)  # type: ignore[call-overload]
                     if c not in ("time", "district", "school", "agent") and v is not None}
            fields = " ".join(f"{k}={round(v, 1) if isinstance(v, float) else v}"
                              for k, v in list(shown.items())[:7])
        lines.append(f"  {kind:<9} {n:>5} points   last: {fields}")
    return lines


def run_demo(duration: float, workdir: Path | None = None) -> int:
    """Run the local stack for ``duration`` seconds (0: until Ctrl-C)."""
    if not SERVICES.exists():
        print(f"schoolmon demo: {SERVICES} not found; run it from a source checkout",
              file=sys.stderr)
        return 2
    workdir = workdir or Path(tempfile.mkdtemp(prefix="schoolmon-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    svc_dir = workdir / "services"
    print(f"schoolmon demo: work directory {workdir}")
    started = subprocess.run(["bash", str(SERVICES), "start", str(svc_dir), "mosquitto",
                              "influxdb"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        print(f"schoolmon demo: services did not start: {started.stderr.strip()}",
              file=sys.stderr)
        return 1
    env = read_env(svc_dir / "services.env")
    st_port = free_port()
    collector_yaml, agent_yaml = write_configs(workdir, env, f"http://127.0.0.1:{st_port}")
    print(f"  Mosquitto  mqtt://{env['MQTT_HOST']}:{env['MQTT_PORT']}")
    print(f"  InfluxDB   {env['INFLUXDB_URL']} (database schoolmon)")
    cmd = [sys.executable, "-m", "schoolmon"]
    procs = []
    try:
        with open(workdir / "collector.log", "ab") as clog, \
                open(workdir / "agent.log", "ab") as alog, \
                open(workdir / "speedtest.log", "ab") as slog:
            procs.append(subprocess.Popen([*cmd, "speedtest", "serve", "--listen",
                                           f"127.0.0.1:{st_port}"], stdout=slog, stderr=slog))
            wait_listening(st_port)
            procs.append(subprocess.Popen([*cmd, "collector", "run", "-c", str(collector_yaml)],
                                          stdout=clog, stderr=clog))
            procs.append(subprocess.Popen([*cmd, "agent", "run", "-c", str(agent_yaml)],
                                          stdout=alog, stderr=alog))
        print(f"  speed-test server http://127.0.0.1:{st_port}, collector and agent running "
              f"(logs: {workdir}/*.log)")
        begun = time.monotonic()
        deadline = begun + duration if duration > 0 else float("inf")
        while time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
            if any(p.poll() is not None for p in procs):
                print("schoolmon demo: a process exited early; see the logs", file=sys.stderr)
                return 1
            counts = ", ".join(f"{k} {point_count(env['INFLUXDB_URL'], k)}" for k in KINDS)
            print(f"  [{time.monotonic() - begun:4.0f}s] points in InfluxDB: {counts}")
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("\nWhat landed in InfluxDB (measurement, points, latest values):")
    print("\n".join(summary(env["INFLUXDB_URL"])))
    subprocess.run(["bash", str(SERVICES), "stop", str(svc_dir)], check=False)
    print(f"\nServices stopped; their data stays in {svc_dir}. To look further:\n"
          f"  bash {SERVICES} start {svc_dir} mosquitto influxdb\n"
          f"  curl -G {env['INFLUXDB_URL']}/query --data-urlencode db=schoolmon "
          f"--data-urlencode 'q=SELECT * FROM iface ORDER BY time DESC LIMIT 5'\n"
          f"  {os.path.basename(sys.argv[0]) or 'schoolmon'} agent probe iface -c {agent_yaml}")
    return 0
