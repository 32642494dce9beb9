"""Speed-test accuracy: our client/server vs iperf3 across veth links shaped with tc tbf.

For each rate (4, 10, 100, 1000 Mbit/s, both directions shaped) and each direction, in the same
run: `schoolmon speedtest run` against `schoolmon speedtest serve`, and `iperf3 -c` against
`iperf3 -s` (same streams, the same warm-up omitted).  Prints measured/shaped ratios, repeats
with 2 % random loss (iptables statistic; netem is unavailable), and writes docs/benchmarks.md.
Needs root (network namespaces).  Run: .venv/bin/python -m bench.speedtest_accuracy
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.netlab import ShapedLink, available
from bench.report import machine, write_section

STREAMS = 4


def wait_port(link: ShapedLink, port: int) -> None:
    """Until something listens on the server's port (without connecting: iperf3 -1 would
    count the probe as its one client)."""
    for _ in range(100):
        out = subprocess.run(link.command(link.server_ns, ["ss", "-Hltn", f"sport = :{port}"]),
                             capture_output=True, text=True, check=False).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def ours(link: ShapedLink, duration: float) -> tuple[float, float]:
    """(down, up) Mbit/s from our client against our server."""
    server = subprocess.Popen(link.command(link.server_ns, [
        sys.executable, "-m", "schoolmon", "speedtest", "serve", "--listen",
        f"{link.server_ip}:8080"]), stderr=subprocess.DEVNULL)
    try:
        wait_port(link, 8080)
        out = subprocess.run(link.command(link.client_ns, [
            sys.executable, "-m", "schoolmon", "speedtest", "run", "--server",
            f"http://{link.server_ip}:8080", "--duration", str(duration), "--streams",
            str(STREAMS), "--max-mb", "100000", "--json"]),
            capture_output=True, text=True, check=True, timeout=300)
        result = json.loads(out.stdout)
        return float(result["down_mbps"]), float(result["up_mbps"])
    finally:
        server.terminate()
        server.wait(10)


def iperf3(link: ShapedLink, duration: float, reverse: bool) -> float:
    """Mbit/s received, iperf3 with the same streams and warm-up omitted."""
    server = subprocess.Popen(link.command(link.server_ns, [
        "iperf3", "-s", "-1", "-B", link.server_ip, "-p", "5201"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(link, 5201)
        omit = min(2, round(duration * 0.25))
        args = ["iperf3", "-c", link.server_ip, "-p", "5201", "-t", str(duration), "-O",
                str(omit), "-P", str(STREAMS), "-J"] + (["-R"] if reverse else [])
        out = subprocess.run(link.command(link.client_ns, args), capture_output=True, text=True,
                             check=True, timeout=300)
        return float(json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        server.wait(10)


def main() -> int:
    """Run every case, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="4,10,100,1000")
    parser.add_argument("--duration", type=float, default=6.0)
    args = parser.parse_args()
    if (why := available()) is not None:
        print(f"bench: {why}", file=sys.stderr)
        return 2
    rows = ["| loss | shaped Mbit/s | direction | schoolmon Mbit/s | ratio | iperf3 Mbit/s | ratio "
            "| schoolmon - iperf3 (points) |", "|---|---|---|---|---|---|---|---|"]
    worst_error, worst_gap = 0.0, 0.0
    for loss in (0.0, 2.0):
        for rate in [float(r) for r in args.rates.split(",")]:
            with ShapedLink(rate, loss_pct=loss) as link:
                down, up = ours(link, args.duration)
                ref_down = iperf3(link, args.duration, reverse=True)
                ref_up = iperf3(link, args.duration, reverse=False)
            for direction, got, ref in (("down", down, ref_down), ("up", up, ref_up)):
                ratio, ref_ratio = got / rate, ref / rate
                gap = (ratio - ref_ratio) * 100
                if loss == 0:
                    worst_error = max(worst_error, abs(1 - ratio))
                worst_gap = min(worst_gap, gap)
                row = (f"| {loss:.0f} % | {rate:g} | {direction} | {got:.2f} | {ratio:.3f} | "
                       f"{ref:.2f} | {ref_ratio:.3f} | {gap:+.1f} |")
                rows.append(row)
                print(row, flush=True)
    summary = (f"Worst error without loss: {worst_error * 100:.1f} % of the shaped rate "
               f"(target <= 5 %); worst gap to iperf3: {worst_gap:+.1f} points (target >= -2).")
    print(summary)
    write_section("speedtest_accuracy", "\n".join([
        "## Speed-test accuracy (`bench/speedtest_accuracy.py`)", "",
        "Two network namespaces joined by a veth pair, `tc tbf` at the shaped rate on both ends "
        f"(burst >= 128 KiB so GSO packets pass, latency 50 ms); {STREAMS} streams, "
        f"{args.duration:g} s per direction, the first quarter (max 2 s) discarded as warm-up by "
        "both tools (iperf3 `-O`). Loss: iptables `statistic --mode random` DROP on INPUT on "
        "both ends. TCP goodput tops out near 95.8 % of the shaped rate (headers).", "",
        f"Measured {machine()}.", "", *rows, "", summary]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
