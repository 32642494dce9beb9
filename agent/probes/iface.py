"""Network interfaces of the agent host: rates from counter deltas, link speed, state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from agent.probes.base import Monotonic, ProbeSettingsBase, WallClockMs
from common.config import Duration
from common.vocab import InterfaceRole
from common.wire import Sample


class IfaceSettings(ProbeSettingsBase):
    """``type: iface``: every NIC (loopback excluded) with the roles given."""

    type: Literal["iface"]
    interval: Duration = 10.0
    roles: dict[str, InterfaceRole] = {}
    only_listed: bool = False  # measure only the NICs named in roles

    def build(self) -> IfaceProbe:
        """The probe on psutil."""
        return IfaceProbe(self, psutil_sources())


class Counters(NamedTuple):
    """Cumulative counters of one NIC, as psutil.net_io_counters(pernic=True) gives."""

    bytes_sent: int
    bytes_recv: int
    errin: int
    errout: int
    dropin: int
    dropout: int


class LinkState(NamedTuple):
    """State of one NIC, as psutil.net_if_stats() gives (speed 0 = unknown)."""

    isup: bool
    speed: int


@dataclass(frozen=True)
class IfaceSources:
    """Where the probe reads from (psutil in production, recorded values in tests)."""

    counters: Callable[[], Mapping[str, Counters]]
    links: Callable[[], Mapping[str, LinkState]]
    monotonic: Monotonic
    now_ms: WallClockMs


def psutil_sources() -> IfaceSources:
    """Sources backed by psutil."""
    import time

    import psutil

    from agent.probes.base import wall_clock_ms

    def counters() -> dict[str, Counters]:
        return {
            name: Counters(c.bytes_sent, c.bytes_recv, c.errin, c.errout, c.dropin, c.dropout)
            for name, c in psutil.net_io_counters(pernic=True).items()
        }

    def links() -> dict[str, LinkState]:
        return {name: LinkState(s.isup, s.speed) for name, s in psutil.net_if_stats().items()}

    return IfaceSources(counters, links, time.monotonic, wall_clock_ms)


class IfaceProbe:
    """Per-NIC rx/tx bits per second; the first reading of a NIC (or after a reset) has no rate."""

    def __init__(self, settings: IfaceSettings, sources: IfaceSources) -> None:
        self.settings = settings
        self.sources = sources
        self._last: dict[str, tuple[float, Counters]] = {}

    def _wanted(self, name: str) -> bool:
        if name in self.settings.roles:
            return True
        return not self.settings.only_listed and name != "lo" and not name.startswith("lo:")

    def collect(self) -> list[Sample]:
        """One sample per NIC."""
        counters = self.sources.counters()
        links = self.sources.links()
        now, ts_ms = self.sources.monotonic(), self.sources.now_ms()
        samples = []
        seen = set()
        for name in sorted(counters):
            if not self._wanted(name):
                continue
            seen.add(name)
            cur = counters[name]
            link = links.get(name, LinkState(False, 0))
            fields: dict[str, int | float | bool | str] = {
                "up": link.isup,
                "errors": cur.errin + cur.errout,
                "drops": cur.dropin + cur.dropout,
            }
            if link.speed > 0:
                fields["link_mbps"] = link.speed
            prev = self._last.get(name)
            if prev is not None:
                fields.update(_rates(now - prev[0], prev[1], cur))
            self._last[name] = (now, cur)
            role = self.settings.roles.get(name, "other")
            samples.append(Sample("iface", ts_ms, {"iface": name, "role": role}, fields))
        # A NIC that disappeared starts again from "no rate" if it comes back.
        for gone in set(self._last) - seen:
            del self._last[gone]
        return samples


def _rates(elapsed: float, old: Counters, new: Counters) -> dict[str, float]:
    # A counter that went back means a reset (driver reload, 32-bit wrap on some kernels):
    # no rate this time rather than a huge wrong one.
    if elapsed <= 0 or new.bytes_recv < old.bytes_recv or new.bytes_sent < old.bytes_sent:
        return {}
    return {
        "rx_bps": (new.bytes_recv - old.bytes_recv) * 8 / elapsed,
        "tx_bps": (new.bytes_sent - old.bytes_sent) * 8 / elapsed,
    }
