"""Speed-test server throughput on loopback, against iperf3 on loopback in the same run.

The server must sustain >= 2 Gbit/s on this 2-core machine, so it never limits a gigabit
school.  Client and server share the two cores, as iperf3's client and server do.
Run: .venv/bin/python -m bench.speedtest_server_throughput
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from bench.report import machine, write_section


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int) -> None:
    """Until the port accepts (without connecting to it)."""
    for _ in range(100):
        out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                             text=True, check=False).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def main() -> int:
    """Measure, print and record."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "schoolmon", "speedtest", "serve",
                               "--listen", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_listening(port)
        for streams in (1, 4):
            out = subprocess.run([sys.executable, "-m", "schoolmon", "speedtest", "run",
                                  "--server", f"http://127.0.0.1:{port}", "--duration", "5",
                                  "--streams", str(streams), "--max-mb", "10000000", "--json"],
                                 capture_output=True, text=True, check=True)
            ours = json.loads(out.stdout)
            iport = free_port()
            iserver = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p",
                                        str(iport)], stdout=subprocess.DEVNULL)
            wait_listening(iport)
            ref = {}
            for reverse in (True, False):
                if not reverse:
                    iserver.wait(10)
                    iserver = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p",
                                                str(iport)], stdout=subprocess.DEVNULL)
                    wait_listening(iport)
                res = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(iport), "-t", "5",
                                      "-O", "1", "-P", str(streams), "-J"]
                                     + (["-R"] if reverse else []),
                                     capture_output=True, text=True, check=True)
                ref[reverse] = json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"]
            iserver.wait(10)
            for direction, got, reference in (("down", ours["down_mbps"], ref[True] / 1e6),
                                              ("up", ours["up_mbps"], ref[False] / 1e6)):
                row = (f"| {streams} | {direction} | {got / 1000:.2f} | {reference / 1000:.2f} "
                       f"| {got / reference:.2f} |")
                rows.append(row)
                print(row, flush=True)
    finally:
        server.terminate()
        server.wait(10)
    write_section("speedtest_server", "\n".join([
        "## Speed-test server on loopback (`bench/speedtest_server_throughput.py`)", "",
        "`schoolmon speedtest serve` and `schoolmon speedtest run` (5 s per direction) on "
        "127.0.0.1, then iperf3 client and server on 127.0.0.1 in the same run; client and "
        "server share the machine's cores in both cases. Target: >= 2 Gbit/s.", "",
        f"Measured {machine()}.", "",
        "| streams | direction | schoolmon Gbit/s | iperf3 Gbit/s | ratio |",
        "|---|---|---|---|---|",
        *rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
