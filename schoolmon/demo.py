"""``schoolmon demo``: a district-in-a-box on this machine: is each school on target?

Starts Mosquitto and InfluxDB 1.x with scripts/services.sh (loopback, free ports, data in a
work directory), an SMTP server catching the alert mails, a collector with the inventory and two
policies, this machine's agent, and a simulated district of about 20 schools with a few school
days backfilled. At the end: per policy each target, the share of schools meeting it and the
schools that miss; the mails; the HTML and CSV reports; where Grafana's provisioning is.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from schoolmon.demo_config import LOCAL_SCHOOL, POLICIES

SERVICES = Path(__file__).resolve().parents[1] / "scripts" / "services.sh"
KINDS = ("iface", "host", "reach", "speedtest", "agent")
DEMO_SEED = 7
SIM_INTERVAL_S = 1800  # a sample per agent and kind every 30 min: a few days land in seconds


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


def point_count(url: str, kind: str, where: str = "") -> int:
    """Points stored for one kind (the largest per-field count)."""
    series = influx_query(url, "schoolmon", f'SELECT COUNT(*) FROM "{kind}" {where}')
    if not series:
        return 0
    row = series[0]["values"][0]  # type: ignore[index]
    return max((v for v in row[1:] if isinstance(v, int)), default=0)


def summary(url: str) -> list[str]:
    """Points per kind and the latest values, as lines to print."""
    lines = []
    for kind in KINDS:
        local = f"WHERE school = '{LOCAL_SCHOOL}'"
        n = point_count(url, kind, local)
        last = influx_query(url, "schoolmon",
                            f'SELECT * FROM "{kind}" {local} ORDER BY time DESC LIMIT 1')
        fields = ""
        if last:
            cols, vals = last[0]["columns"], last[0]["values"][0]  # type: ignore[index]
            shown = {c: v for c, v in zip(cols, vals, strict=True)  # type: ignore[call-overload]
                     if c not in ("time", "district", "school", "agent") and v is not None}
            fields = " ".join(f"{k}={round(v, 1) if isinstance(v, float) else v}"
                              for k, v in list(shown.items())[:7])
        lines.append(f"  {kind:<9} {n:>5} points   last: {fields}")
    return lines


def default_language() -> str:
    """zh-CN when the locale is Chinese, else en."""
    loc = os.environ.get("LC_ALL") or os.environ.get("LC_MESSAGES") or os.environ.get("LANG", "")
    return "zh-CN" if loc.lower().startswith("zh") else "en"


def start_processes(workdir: Path, st_port: int, collector_yaml: Path,
                    agent_yaml: Path) -> list[subprocess.Popen[bytes]]:
    """The speed-test server, the collector and the local agent, logging into workdir."""
    cmd = [sys.executable, "-m", "schoolmon"]
    procs = []
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
    return procs


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each, then wait (kill after 10 s)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_demo(duration: float, workdir: Path | None = None, lang: str | None = None,
             schools: int = 20, backfill: int = 3) -> int:
    """Run the district for ``duration`` live seconds (0: until Ctrl-C), then show the mission."""
    from collector.config import load_collector_config
    from schoolmon.demo_config import district, write_configs
    from schoolmon.demo_show import MailSink, show_mission
    from schoolmon.simulate import RunOptions, SimulationResult, run_simulation

    missing = missing_prerequisite()
    if missing:
        print(f"schoolmon demo: {missing}", file=sys.stderr)
        return 2
    lang = lang or default_language()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="schoolmon-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    svc_dir = workdir / "services"
    print(f"schoolmon demo: work directory {workdir}", flush=True)
    started = subprocess.run(["bash", str(SERVICES), "start", str(svc_dir), "mosquitto",
                              "influxdb"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        print(f"schoolmon demo: services did not start: {started.stderr.strip()}",
              file=sys.stderr)
        return 1
    env = read_env(svc_dir / "services.env")
    sink = MailSink(workdir / "mail", free_port())
    sink.start()
    st_port = free_port()
    plan, inventory = district(schools, seed=DEMO_SEED)
    collector_yaml, agent_yaml = write_configs(workdir, env, f"http://127.0.0.1:{st_port}",
                                               smtp_port=sink.port, inventory=inventory,
                                               lang=lang)
    config = load_collector_config(collector_yaml)
    print(f"  Mosquitto  mqtt://{env['MQTT_HOST']}:{env['MQTT_PORT']}")
    print(f"  InfluxDB   {env['INFLUXDB_URL']} (database schoolmon)")
    print(f"  SMTP       127.0.0.1:{sink.port} (alert mails kept in {sink.directory})")
    print(f"  district   {len(inventory.schools)} schools ({schools} simulated, "
          f"{backfill} school days backfilled, and this machine), policies "
          f"{', '.join(POLICIES)}", flush=True)
    procs = start_processes(workdir, st_port, collector_yaml, agent_yaml)
    print(f"  speed-test server http://127.0.0.1:{st_port}, collector and agent running "
          f"(logs: {workdir}/*.log)", flush=True)
    # The simulator resends what a collector busy with the backfill has not acked in 30 s:
    # expected on a small machine, and not what the demo is about.
    logging.getLogger("schoolmon.sim").setLevel(logging.ERROR)
    results: list[SimulationResult] = []
    sim = threading.Thread(target=lambda: results.append(run_simulation(
        config.mqtt, plan, RunOptions(interval=SIM_INTERVAL_S, backfill=backfill, ack_timeout=60))),
        daemon=True)
    sim.start()
    code = 0
    try:
        code = watch(env["INFLUXDB_URL"], procs, sim, sink, duration)
    except KeyboardInterrupt:
        pass
    finally:
        stop_processes(procs)
    if code == 0 and results:
        code = show_mission(workdir, collector_yaml, results[0], sink, lang=lang,
                            policies=POLICIES)
    elif code == 0:
        print("schoolmon demo: the simulated district was not acknowledged; see "
              f"{workdir}/collector.log", file=sys.stderr)
        code = 1
    sink.stop()
    finish(env, svc_dir)
    return code


def missing_prerequisite() -> str | None:
    """Why the demo cannot run here (one line), or None."""
    if not SERVICES.exists():
        return f"{SERVICES} not found; run it from a source checkout"
    try:
        import aiosmtpd  # noqa: F401 - the demo's mail server; a dev extra, made by `make demo`
    except ImportError:
        return "needs aiosmtpd for its mail server: pip install aiosmtpd (make demo installs it)"
    return None


def finish(env: dict[str, str], svc_dir: Path) -> None:
    """Show what this machine's agent sent, stop the services, say how to look further."""
    print("\nWhat landed in InfluxDB from this machine's agent (measurement, points, latest):")
    print("\n".join(summary(env["INFLUXDB_URL"])))
    subprocess.run(["bash", str(SERVICES), "stop", str(svc_dir)], check=False)
    print(f"\nServices stopped; their data stays in {svc_dir}. To look further:\n"
          f"  bash {SERVICES} start {svc_dir} mosquitto influxdb\n"
          f"  curl -G {env['INFLUXDB_URL']}/query --data-urlencode db=schoolmon "
          f"--data-urlencode 'q=SELECT * FROM compliance ORDER BY time DESC LIMIT 5'")


def passes_since(url: str, since_ms: int) -> int:
    """Rules passes whose compliance points are stored with a time after ``since_ms``."""
    series = influx_query(url, "schoolmon", f'SELECT COUNT("met") FROM compliance WHERE '
                          f'time > {since_ms}ms GROUP BY time(1s) fill(none)')
    return len(series[0]["values"]) if series else 0  # type: ignore[arg-type]


def watch(url: str, procs: list[subprocess.Popen[bytes]], sim: threading.Thread,
          sink: Any, duration: float) -> int:
    """Progress lines until the duration is over and the district has landed and been judged."""
    begun = time.monotonic()
    # After the duration, up to a minute more for the backfill's acks, a pass and the mails.
    deadline = begun + duration + 60 if duration > 0 else float("inf")
    landed_ms: int | None = None
    while time.monotonic() < deadline:
        time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
        if any(p.poll() is not None for p in procs):
            print("schoolmon demo: a process exited early; see the logs", file=sys.stderr)
            return 1
        if landed_ms is None and not sim.is_alive():
            landed_ms = int(time.time() * 1000)
        compliance = point_count(url, "compliance")
        mails = len(sink.subjects())
        counts = ", ".join(f"{k} {point_count(url, k)}" for k in ("iface", "speedtest", "av"))
        print(f"  [{time.monotonic() - begun:4.0f}s] district backfill "
              f"{'running' if landed_ms is None else 'acknowledged'}; points: {counts}, "
              f"compliance {compliance}; alert mails {mails}", flush=True)
        # The report shows each rule's newest pass: it must be one that saw the whole
        # district. A second pass after the backfill landed means the first one is stored.
        over = duration > 0 and time.monotonic() - begun >= duration
        if over and landed_ms is not None and mails > 0 and passes_since(url, landed_ms) >= 2:
            break
    return 0
