"""A day of a school gateway agent's batches, made by the real probes on simulated readings.

The gateway of configs/agent.example.yaml without its device probes: ``iface`` every 10 s over
three NICs (wan, lan, wlan), ``host`` every 60 s, ``reach`` every 30 s to its three targets and
the agent's own ``agent`` sample every 60 s.  Each probe run is one batch, as the scheduler
spools it (one ``encode_samples`` per run), so the sizes are those a real agent puts on the wire:
the probes themselves build the samples, from counters, CPU times and echo round trips drawn from
a seeded random generator.  Used by the satellite-link test and the compression benchmark.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.probes.host import CpuTimes, HostProbe, HostSettings, HostSources
from agent.probes.iface import (
    Counters,
    IfaceProbe,
    IfaceSettings,
    IfaceSources,
    LinkState,
)
from agent.probes.reach import EchoStats, ReachProbe, ReachSettings
from agent.spool import Spool
from common.vocab import InterfaceRole
from common.wire import Sample, encode_samples

DAY_S = 86_400
NICS: dict[str, InterfaceRole] = {"eth0": "wan", "eth1": "lan", "wlan0": "wlan"}
# (probe, interval in s, samples per run)
SCHEDULE = (("iface", 10, len(NICS)), ("host", 60, 1), ("reach", 30, 3), ("agent", 60, 1))


@dataclass(frozen=True)
class DayCounts:
    """Batches and samples of ``seconds`` of the gateway's schedule."""

    batches: int
    samples: int
    per_kind: dict[str, int]


def day_counts(seconds: int = DAY_S) -> DayCounts:
    """How many batches and samples the schedule makes in ``seconds``."""
    per_kind = {kind: seconds // every * n for kind, every, n in SCHEDULE}
    return DayCounts(sum(seconds // every for _, every, _ in SCHEDULE),
                     sum(per_kind.values()), per_kind)


class _Clock:
    """The simulated time every probe reads."""

    def __init__(self, start_ms: int) -> None:
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000


class _Gateway:
    """The probes, fed by readings that drift like a school's network does."""

    def __init__(self, clock: _Clock, rng: random.Random) -> None:
        self.rng = rng
        self.clock = clock
        self.octets = {nic: [rng.randrange(10**9, 10**11), rng.randrange(10**9, 10**11)]
                       for nic in NICS}
        self.busy, self.total = 5000.0, 90000.0
        self.iface = IfaceProbe(IfaceSettings(type="iface", roles=dict(NICS)), IfaceSources(
            self._counters, lambda: {n: LinkState(True, 1000) for n in NICS},
            clock.monotonic, clock.now_ms))
        self.host = HostProbe(HostSettings(type="host"), HostSources(
            boot_time=lambda: clock.ms / 1000 - 3 * 86400, cpu_times=self._cpu,
            mem_pct=lambda: round(rng.uniform(35, 55), 1),
            disk_pct=lambda _path: round(rng.uniform(20, 21), 1), now_ms=clock.now_ms))
        self.reach = ReachProbe(ReachSettings.model_validate({"type": "reach", "targets": [
            {"name": "gateway", "host": "192.168.1.1", "role": "gateway"},
            {"name": "dns", "host": "223.5.5.5", "role": "dns"},
            {"name": "district-hub", "host": "10.20.0.1", "role": "district", "method": "tcp",
             "port": 443}]}),
            icmp=self._icmp, tcp=lambda _host, _port, count, *_: self._echoes(count, 12.0),
            now_ms=clock.now_ms)

    def _counters(self) -> dict[str, Counters]:
        for nic, pair in self.octets.items():
            scale = 6e6 if nic == "eth0" else 2e6
            pair[0] += int(self.rng.expovariate(1 / scale))
            pair[1] += int(self.rng.expovariate(1 / (scale * 4)))
        return {nic: Counters(o[0], o[1], 0, 0, 0, self.rng.choice((0, 0, 0, 3)))
                for nic, o in self.octets.items()}

    def _cpu(self) -> CpuTimes:
        self.total += 120.0
        self.busy += self.rng.uniform(2, 20)
        return CpuTimes(self.busy, self.total)

    def _icmp(self, host: str, count: int, *_: float) -> EchoStats:
        # The school's own gateway answers in ~2 ms, the internet in ~30.
        return self._echoes(count, 2.0 if host.startswith("192.168.") else 30.0)

    def _echoes(self, count: int, base_ms: float) -> EchoStats:
        rtts = [round(base_ms * self.rng.uniform(0.8, 1.6), 3) for _ in range(count)]
        lost = 1 if self.rng.random() < 0.02 else 0
        return EchoStats(count, count - lost, rtts[lost:])

    def agent(self) -> list[Sample]:
        return [Sample("agent", self.clock.ms, {}, {
            "rss_mb": round(self.rng.uniform(40, 43), 2),
            "cpu_pct": round(self.rng.uniform(0, 1), 1),
            "spool_depth": self.rng.randrange(0, 3), "spool_bytes": self.rng.randrange(0, 2000),
            "dropped_total": 0, "probe_errors": 0})]

    def run(self, probe: str) -> list[Sample]:
        if probe == "iface":
            return self.iface.collect()
        if probe == "host":
            return self.host.collect()
        if probe == "reach":
            return self.reach.collect()
        return self.agent()


def day_batches(start_ms: int, seconds: int = DAY_S, seed: int = 2017) -> Iterator[list[Sample]]:
    """Every batch of ``seconds`` from ``start_ms``, in the order the agent would spool them."""
    rng = random.Random(seed)
    clock = _Clock(start_ms)
    gateway = _Gateway(clock, rng)
    runs = sorted((k * every * 1000 + offset, probe)
                  for offset, (probe, every, _) in enumerate(SCHEDULE)
                  for k in range(seconds // every))
    for at_ms, probe in runs:
        # A real run starts a few ms late; that also gives the rates their full precision.
        clock.ms = start_ms + at_ms + rng.randrange(0, 40)
        yield gateway.run(probe)


def fill_spool(path: Path, start_ms: int, seconds: int = DAY_S) -> DayCounts:
    """Write a day of batches into an agent spool at ``path``, each created at its own time."""
    created = _Clock(start_ms)
    spool = Spool(path, 512 * 2**20, 30 * 86400.0, clock_ms=created.now_ms).open()
    batches = samples = 0
    per_kind: dict[str, int] = {}
    try:
        for batch in day_batches(start_ms, seconds):
            created.ms = batch[0].ts_ms
            spool.append(encode_samples(batch), len(batch))
            batches += 1
            samples += len(batch)
            per_kind[batch[0].kind] = per_kind.get(batch[0].kind, 0) + len(batch)
    finally:
        spool.close()
    return DayCounts(batches, samples, per_kind)
