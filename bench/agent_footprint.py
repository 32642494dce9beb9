"""Agent footprint: resident memory and CPU of a running `schoolmon agent run`.

(a) a classroom/gateway agent: iface, host, reach, pjlink, wifi;
(b) every probe type, 50 devices each (reach, pjlink, av, snmp, ssh targets on loopback; the
    snmp and ssh targets answer nothing, which is the expensive case: timeouts and retries).
Each runs against a real Mosquitto (and a PJLink test peer) at the intervals of the example
configs; RSS and CPU are read after a warm-up.  Targets: (a) <= 45 MB, (b) <= 90 MB, both
< 2 % of one core.  Run: .venv/bin/python -m bench.agent_footprint [--seconds 60]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench.report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]


def start_pjlink_peer() -> int:
    """The PJLink test peer (tests/peers) on a free port, in a thread of this process."""
    sys.path.insert(0, str(ROOT))
    from tests.peers.pjlink_server import PjlinkServer

    server: Any = PjlinkServer()  # serves from its own thread until the process ends
    return int(server.port)


def configs(port: int, pj_port: int, spool: Path) -> dict[str, dict[str, Any]]:
    """The two agent configurations."""
    base = {"mqtt": {"host": "127.0.0.1", "port": port}}
    light = [
        {"type": "iface", "interval": "10s"}, {"type": "host", "interval": "60s"},
        {"type": "reach", "interval": "30s", "count": 5, "timeout": "2s",
         "targets": [{"name": "gw", "host": "127.0.0.1", "role": "gateway", "method": "icmp"}]},
        {"type": "pjlink", "interval": "60s",
         "devices": [{"name": "proj", "classroom": "1", "host": "127.0.0.1", "port": pj_port}]},
        {"type": "wifi", "interval": "5m", "classroom": "1", "method": "iw",
         "ssids": ["School"]},
    ]
    n = range(50)
    every = [
        {"type": "iface", "interval": "10s"}, {"type": "host", "interval": "60s"},
        {"type": "reach", "interval": "30s", "count": 5, "timeout": "2s",
         "targets": [{"name": f"t{i}", "host": "127.0.0.1", "role": "device", "method": "icmp"}
                     for i in n]},
        {"type": "pjlink", "interval": "60s",
         "devices": [{"name": f"p{i}", "classroom": f"{i}", "host": "127.0.0.1",
                      "port": pj_port} for i in n]},
        {"type": "av", "interval": "60s",
         "devices": [{"name": f"pc{i}", "classroom": f"{i}", "device_type": "pc",
                      "host": "127.0.0.1", "method": "tcp", "port": 9} for i in n]},
        {"type": "snmp", "interval": "60s", "timeout": "1s", "retries": 1,
         "targets": [{"name": f"sw{i}", "host": "127.0.0.1", "port": 9, "version": "2c",
                      "community_env": "HOME"} for i in n]},
        {"type": "ssh", "interval": "5m", "timeout": "60s",
         "targets": [{"name": f"e{i}", "host": "127.0.0.1", "port": 9, "device_type": "linux",
                      "username": "mon", "password_env": "HOME"} for i in n]},
        {"type": "wifi", "interval": "5m", "classroom": "1", "method": "iw",
         "ssids": ["School"]},
    ]
    return {
        "a: iface+host+reach+pjlink+wifi": {**base, "probes": light},
        "b: every probe, 50 devices each": {**base, "probes": every},
    }


def measure(cfg: dict[str, Any], d: Path, name: str, warmup: float,
            seconds: float) -> tuple[float, float]:
    """(RSS MB at the end, average CPU % of one core) of one agent."""
    cfg = {"agent": {"id": name, "school": "s", "district": "d"},
           "spool": {"path": str(d / f"{name}.db")}, **cfg}
    path = d / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "schoolmon", "agent", "run", "-c", str(path)],
                            stderr=subprocess.DEVNULL)
    try:
        ps = psutil.Process(proc.pid)
        time.sleep(warmup)
        cpu0, t0 = sum(ps.cpu_times()[:2]), time.monotonic()
        peak = 0.0
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            peak = max(peak, ps.memory_info().rss / 2**20)
        cpu = (sum(ps.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0) * 100
        return peak, cpu
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    """Measure both configurations and record them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-foot-") as tmp:
        d = Path(tmp)
        out = subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "start",
                              str(d / "svc"), "mosquitto"], capture_output=True, text=True,
                             check=True)
        port = int(next(line.split("=")[1] for line in out.stdout.splitlines()
                        if line.startswith("MQTT_PORT")))
        try:
            pj_port = start_pjlink_peer()
            for i, (label, cfg) in enumerate(configs(port, pj_port, d).items()):
                rss, cpu = measure(cfg, d, f"foot{i}", args.warmup, args.seconds)
                target = 45 if i == 0 else 90
                row = (f"| {label} | {rss:.1f} MB (target <= {target}) | {cpu:.2f} % "
                       "(target < 2) |")
                rows.append(row)
                print(row, flush=True)
        finally:
            subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "stop",
                            str(d / "svc")], check=False)
    write_section("agent_footprint", "\n".join([
        "## Agent footprint (`bench/agent_footprint.py`)", "",
        f"`schoolmon agent run` publishing to a real Mosquitto, the example intervals; peak RSS "
        f"over {args.seconds:g} s after a {args.warmup:g} s warm-up, and CPU time over that "
        "window as % of one core. The snmp and ssh targets of (b) answer nothing (timeouts and "
        "retries every poll: the expensive case).", "",
        f"Measured {machine()}.", "",
        "| agent | peak RSS | CPU |", "|---|---|---|", *rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
