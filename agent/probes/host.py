"""The agent host itself: uptime, CPU, memory and disk use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from agent.probes.base import ProbeSettingsBase, WallClockMs
from common.wire import Sample


class HostSettings(ProbeSettingsBase):
    """``type: host``."""

    type: Literal["host"]
    disk_path: str = "/"

    def build(self) -> HostProbe:
        """The probe on psutil."""
        return HostProbe(self, psutil_sources())


class CpuTimes(NamedTuple):
    """Cumulative CPU seconds: busy and total."""

    busy: float
    total: float


@dataclass(frozen=True)
class HostSources:
    """Where the probe reads from (psutil in production)."""

    boot_time: Callable[[], float]
    cpu_times: Callable[[], CpuTimes]
    mem_pct: Callable[[], float]
    disk_pct: Callable[[str], float]
    now_ms: WallClockMs


def psutil_sources() -> HostSources:
    """Sources backed by psutil."""
    import psutil

    from agent.probes.base import wall_clock_ms

    def cpu_times() -> CpuTimes:
        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        total = sum(t)
        return CpuTimes(total - idle, total)

    return HostSources(
        boot_time=psutil.boot_time,
        cpu_times=cpu_times,
        mem_pct=lambda: float(psutil.virtual_memory().percent),
        disk_pct=lambda path: float(psutil.disk_usage(path).percent),
        now_ms=wall_clock_ms,
    )


class HostProbe:
    """One ``host`` sample; cpu_pct is the average since the previous collect."""

    def __init__(self, settings: HostSettings, sources: HostSources) -> None:
        self.settings = settings
        self.sources = sources
        self._last_cpu: CpuTimes | None = None

    def collect(self) -> list[Sample]:
        """Measure now."""
        ts_ms = self.sources.now_ms()
        fields: dict[str, int | float | bool | str] = {
            "uptime_s": max(0, int(ts_ms / 1000 - self.sources.boot_time())),
            "mem_pct": self.sources.mem_pct(),
            "disk_pct": self.sources.disk_pct(self.settings.disk_path),
        }
        cpu = self.sources.cpu_times()
        if self._last_cpu is not None and cpu.total > self._last_cpu.total:
            busy = cpu.busy - self._last_cpu.busy
            fields["cpu_pct"] = round(100.0 * busy / (cpu.total - self._last_cpu.total), 2)
        self._last_cpu = cpu
        return [Sample("host", ts_ms, {}, fields)]
