"""The rate tolerance, derived from measured TCP goodput of a link shaped to each policy tier.

A school whose line delivers exactly its nominal rate still measures less: a speed test counts
TCP payload, and every 1448 payload bytes travel as a 1538-byte Ethernet frame on the wire
(IP 20, TCP 20 + 12 timestamps, Ethernet header 14, FCS 4, preamble 8, inter-frame gap 12).
The rules therefore let a measured rate meet tier T at T x (1 - tolerance). This bench measures
that goodput per tier (4, 5, 10, 100, 1000 Mbit/s: 教学点 4M, rural 5M per class, 10M, 100M,
千兆): two namespaces joined by a veth pair shaped with ``tc tbf`` (bench/netlab.py), the
project's own client against its server and iperf3 beside it, both directions.

``tc tbf`` counts each frame's L2 bytes (header included, per GSO segment) but not the 24 bytes
of FCS, preamble and gap a real Ethernet link also spends: a shaped ratio is scaled by
1514/1538 to the ratio on a real wire of that rate. The tolerance is the smallest whole percent
that covers the worst wire ratio of either tool (any tier, either direction) without loss: what a
school whose line is exactly at its tier needs to meet it, whichever TCP client measured it (our
client's figure is the one the rules see; iperf3 shows the ceiling is TCP's, not our tool's).
Loss is a fault to see, not to excuse. A
figure more than a point below the TCP ceiling is measured once more and the better kept: on a
2-core host a 1000 Mbit/s test reads low when something else runs, and that is not the link.

Needs root. Run: .venv/bin/python -m bench.goodput_tolerance   (about 2.7 min on 2 cores)
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from decimal import Decimal

from bench.netlab import ShapedLink, available
from bench.report import machine, write_section
from bench.speedtest_accuracy import STREAMS, iperf3, ours

TIERS_MBIT = (4, 5, 10, 100, 1000)
MTU = 1500
ETH_HEADER = 14  # counted by tbf
ETH_WIRE_EXTRA = 24  # FCS 4 + preamble 8 + inter-frame gap 12: on the wire, not in tbf
TCP_IP_HEADERS = 52  # IPv4 20 + TCP 20 + timestamps option 12


def wire_factor(mtu: int = MTU) -> Decimal:
    """Frame bytes tbf counts / bytes a real Ethernet link spends: 1514/1538 at MTU 1500."""
    return Decimal(mtu + ETH_HEADER) / Decimal(mtu + ETH_HEADER + ETH_WIRE_EXTRA)


def goodput_ceiling(mtu: int = MTU) -> Decimal:
    """TCP payload / wire bytes of full frames: 1448/1538 = 94.15 % at MTU 1500."""
    return Decimal(mtu - TCP_IP_HEADERS) / Decimal(mtu + ETH_HEADER + ETH_WIRE_EXTRA)


def wire_ratio(measured_mbit: float, shaped_mbit: float, mtu: int = MTU) -> Decimal:
    """Measured goodput on the shaped link as a fraction of a real wire of the same rate."""
    return Decimal(repr(measured_mbit)) / Decimal(repr(shaped_mbit)) * wire_factor(mtu)


def derive_tolerance_pct(ratios: list[Decimal]) -> int:
    """The smallest whole percent t with (1 - t/100) <= every ratio: the worst one still meets."""
    if not ratios:
        raise ValueError("no measurements")
    return max(0, math.ceil((1 - min(ratios)) * 100))


@dataclass(frozen=True)
class Row:
    """One tier, one direction: our client and iperf3, in Mbit/s (* : measured twice)."""

    tier: int
    direction: str
    ours: float
    iperf3: float
    ours_again: bool = False
    iperf3_again: bool = False

    def cells(self) -> str:
        """A markdown table row with shaped and wire ratios."""
        o, i = wire_ratio(self.ours, self.tier), wire_ratio(self.iperf3, self.tier)
        mark_o, mark_i = ("*" if self.ours_again else ""), ("*" if self.iperf3_again else "")
        return (f"| {self.tier} | {self.direction} | {self.ours:.2f}{mark_o} | "
                f"{self.ours / self.tier:.3f} | {o:.3f} | {self.iperf3:.2f}{mark_i} | "
                f"{self.iperf3 / self.tier:.3f} | {i:.3f} |")


def suspect(mbit: float, tier: int) -> bool:
    """More than a point below what TCP can carry: the measuring host, not the link, was slow
    (at 1000 Mbit/s both ends share 2 cores with everything else)."""
    return wire_ratio(mbit, tier) < goodput_ceiling() - Decimal("0.01")


def seconds_per_test(tier: int, fast: float, slow: float) -> float:
    """Seconds per test: longer below 100 Mbit/s, where tbf's 128 KiB burst (0.26 s at 4M) and
    TCP's ramp-up are a larger share of a short test."""
    return slow if tier < 100 else fast


def measure(tiers: list[int], fast: float, slow: float) -> list[Row]:
    """Both tools, both directions, per tier; a suspect figure is measured once more and the
    better of the two kept (the link is the same; only the host's load differs)."""
    rows = []
    for tier in tiers:
        duration = seconds_per_test(tier, fast, slow)
        with ShapedLink(float(tier)) as link:
            down, up = ours(link, duration)
            ours_again = suspect(down, tier) or suspect(up, tier)
            if ours_again:
                down2, up2 = ours(link, duration)
                down, up = max(down, down2), max(up, up2)
            refs = []
            for reverse in (True, False):
                ref = iperf3(link, duration, reverse=reverse)
                again = suspect(ref, tier)
                if again:
                    ref = max(ref, iperf3(link, duration, reverse=reverse))
                refs.append((ref, again))
        (ref_down, down_again), (ref_up, up_again) = refs
        for row in (Row(tier, "down", down, ref_down, ours_again, down_again),
                    Row(tier, "up", up, ref_up, ours_again, up_again)):
            print(row.cells(), flush=True)
            rows.append(row)
    return rows


def main() -> int:
    """Measure, derive the tolerance, write docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiers", default=",".join(map(str, TIERS_MBIT)))
    parser.add_argument("--duration", type=float, default=4.0, help="seconds, >= 100M")
    parser.add_argument("--slow-duration", type=float, default=8.0, help="seconds, < 100M")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if (why := available()) is not None:
        print(f"bench: {why}", file=sys.stderr)
        return 2
    rows = measure([int(t) for t in args.tiers.split(",")], args.duration, args.slow_duration)
    ours_ratios = [wire_ratio(r.ours, r.tier) for r in rows]
    ref_ratios = [wire_ratio(r.iperf3, r.tier) for r in rows]
    tolerance = derive_tolerance_pct(ours_ratios + ref_ratios)
    summary = (f"Worst wire ratio: schoolmon {min(ours_ratios):.4f}, iperf3 "
               f"{min(ref_ratios):.4f} (TCP ceiling {goodput_ceiling():.4f}). Derived rate "
               f"tolerance: {tolerance} % (schoolmon alone: "
               f"{derive_tolerance_pct(ours_ratios)} %, iperf3 alone: "
               f"{derive_tolerance_pct(ref_ratios)} %).")
    print(summary)
    if not args.no_write:
        write_section("goodput_tolerance", "\n".join([
            "## Rate tolerance from TCP goodput (`bench/goodput_tolerance.py`)", "",
            "A veth pair between two namespaces, `tc tbf` at the tier's rate on both ends "
            f"(bench/netlab.py); {STREAMS} streams, {args.slow_duration:g} s per direction below "
            f"100 Mbit/s, {args.duration:g} s from 100 up, warm-up "
            "discarded by both tools; no loss. *shaped*: measured / tbf rate (tbf counts the "
            "14-byte Ethernet header of every frame); *wire*: the same on a real Ethernet link "
            "of that rate, which also spends FCS, preamble and gap (x 1514/1538). TCP payload "
            f"can be at most {goodput_ceiling():.4f} of the wire (1448/1538). A figure more than "
            "a point below that is measured once more and the better kept (marked *).", "",
            f"Measured {machine()}.", "",
            "| tier Mbit/s | direction | schoolmon Mbit/s | shaped | wire | iperf3 Mbit/s | "
            "shaped | wire |", "|---|---|---|---|---|---|---|---|",
            *(r.cells() for r in rows), "", summary]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
