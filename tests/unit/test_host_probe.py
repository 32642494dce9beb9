"""The host probe on injected sources (no psutil)."""

from __future__ import annotations

import pytest

from agent.probes.host import CpuTimes, HostProbe, HostSettings, HostSources
from common.wire import check_samples

BOOT = 1_763_800_000.0  # epoch seconds
NOW_MS = 1_763_890_000_500


class Sources:
    """Replays CPU times; records the disk paths asked for."""

    def __init__(self, cpu: list[CpuTimes], now_ms: list[int] | None = None) -> None:
        self.cpu = list(cpu)
        self.now = list(now_ms or [NOW_MS] * len(cpu))
        self.disk_paths: list[str] = []

    def disk(self, path: str) -> float:
        """Disk use of path."""
        self.disk_paths.append(path)
        return 71.5

    def build(self) -> HostSources:
        """The HostSources of this replay."""
        return HostSources(boot_time=lambda: BOOT, cpu_times=lambda: self.cpu.pop(0),
                           mem_pct=lambda: 42.25, disk_pct=self.disk,
                           now_ms=lambda: self.now.pop(0))


def probe(src: Sources, **settings: object) -> HostProbe:
    """A host probe on src."""
    return HostProbe(HostSettings.model_validate({"type": "host", **settings}), src.build())


def test_first_collect_has_no_cpu_then_exact() -> None:
    """cpu_pct is the busy share between two collects, absent on the first."""
    src = Sources([CpuTimes(100.0, 400.0), CpuTimes(130.0, 500.0), CpuTimes(130.0, 600.0)])
    p = probe(src, disk_path="/srv")
    (first,) = p.collect()
    check_samples([first])
    assert first.kind == "host" and first.tags == {} and first.ts_ms == NOW_MS
    assert "cpu_pct" not in first.fields
    assert first.fields["mem_pct"] == 42.25
    assert first.fields["disk_pct"] == 71.5
    assert src.disk_paths == ["/srv"]
    (second,) = p.collect()
    assert second.fields["cpu_pct"] == 30.0  # 30 busy of 100 total
    (third,) = p.collect()
    assert third.fields["cpu_pct"] == 0.0


def test_cpu_pct_rounded_to_two_places() -> None:
    """1 of 3 seconds busy is 33.33 %."""
    p = probe(Sources([CpuTimes(0.0, 0.0), CpuTimes(1.0, 3.0)]))
    p.collect()
    (sample,) = p.collect()
    assert sample.fields["cpu_pct"] == 33.33


def test_no_cpu_when_total_did_not_advance() -> None:
    """No division by zero when the CPU counters did not move (or went back)."""
    p = probe(Sources([CpuTimes(5.0, 10.0), CpuTimes(5.0, 10.0), CpuTimes(1.0, 2.0),
                       CpuTimes(2.0, 4.0)]))
    p.collect()
    assert "cpu_pct" not in p.collect()[0].fields  # same totals
    assert "cpu_pct" not in p.collect()[0].fields  # counters went back
    assert p.collect()[0].fields["cpu_pct"] == 50.0  # measured from the last reading


@pytest.mark.parametrize(
    ("now_ms", "uptime"),
    [
        (int(BOOT * 1000) + 90_061_999, 90_061),  # whole seconds, truncated
        (int(BOOT * 1000), 0),
        (int(BOOT * 1000) - 5_000, 0),  # clock before boot time: never negative
    ],
)
def test_uptime_from_boot_time(now_ms: int, uptime: int) -> None:
    """uptime_s is now minus boot time in whole seconds."""
    (sample,) = probe(Sources([CpuTimes(1.0, 2.0)], [now_ms])).collect()
    assert sample.fields["uptime_s"] == uptime
    assert isinstance(sample.fields["uptime_s"], int)
    assert sample.ts_ms == now_ms
