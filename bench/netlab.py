"""Two network namespaces joined by a veth pair shaped with tc tbf: a link of known speed.

Used by the speed-test tests and benchmark. Everything it creates is named after this process
and removed on exit; traffic stays inside the two namespaces.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Sequence
from types import TracebackType

_counter = itertools.count(1)


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "iproute2 (ip, tc) is not installed"
    return None


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


class ShapedLink:
    """Namespace ``server`` (address .1) and ``client`` (address .2), rate-limited both ways."""

    def __init__(self, rate_mbit: float, loss_pct: float = 0.0) -> None:
        n = next(_counter)
        tag = f"{os.getpid() % 100000}x{n}"
        self.server_ns, self.client_ns = f"smS{tag}", f"smC{tag}"
        self.rate_mbit = rate_mbit
        self.loss_pct = loss_pct
        subnet = 16 + (os.getpid() + n) % 200
        self.server_ip, self.client_ip = f"10.251.{subnet}.1", f"10.251.{subnet}.2"
        self._veth = (f"vS{tag}"[:15], f"vC{tag}"[:15])

    def __enter__(self) -> ShapedLink:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _create(self) -> None:
        vs, vc = self._veth
        _run("ip", "netns", "add", self.server_ns)
        _run("ip", "netns", "add", self.client_ns)
        _run("ip", "link", "add", vs, "netns", self.server_ns, "type", "veth", "peer", "name",
             vc, "netns", self.client_ns)
        for ns, dev, ip in ((self.server_ns, vs, self.server_ip),
                            (self.client_ns, vc, self.client_ip)):
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            self.set_rate(ns, dev, self.rate_mbit)
        if self.loss_pct > 0:
            # netem is not available on these kernels: random drop with iptables, on receive.
            for ns in (self.server_ns, self.client_ns):
                _run("ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-m", "statistic",
                     "--mode", "random", "--probability", f"{self.loss_pct / 100:.4f}",
                     "-j", "DROP")

    @staticmethod
    def set_rate(ns: str, dev: str, rate_mbit: float) -> None:
        """tbf on the device's egress: the link's speed in that direction."""
        rate_bytes = rate_mbit * 1e6 / 8
        # The bucket must hold a whole GSO super-packet (64 KiB) or tbf drops it.
        burst = int(max(131072, rate_bytes / 250))
        _run("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
             "rate", f"{rate_mbit}mbit", "burst", str(burst), "latency", "50ms")

    def cut(self, down: bool = True) -> None:
        """Take the link down (or up again)."""
        _run("ip", "-n", self.client_ns, "link", "set", self._veth[1],
             "down" if down else "up")

    def command(self, ns: str, argv: Sequence[str]) -> list[str]:
        """argv run inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns, *argv]

    def close(self) -> None:
        """Remove both namespaces (and with them the veth pair and its qdiscs)."""
        for ns in (self.server_ns, self.client_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
