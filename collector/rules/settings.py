"""The ``rules:`` section of collector.yaml: how metrics are computed and how often."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from common.config import Duration, DurationOrZero, Strict
from common.figures import RATE_TOLERANCE_PCT, STATISTIC_RE
from common.timetable import Timetable
from common.vocab import MULTIMEDIA_TYPES, DeviceType


def _statistic(value: str) -> str:
    if not STATISTIC_RE.match(value):
        raise ValueError(f"{value!r} is not a statistic: p1..p100, min, max, mean, median or "
                         "last")
    return value


# A statistic over the samples of a window: 'p90' (nearest-rank percentile), min, max, ...
Statistic = Annotated[str, AfterValidator(_statistic)]


class RulesSettings(Strict):
    """Evaluation timing and the measurement choices behind the metrics (docs/policies.md)."""

    enabled: bool = True
    interval: Duration = 300.0  # between evaluation passes (compliance points)
    window: Duration = 7 * 86400.0  # default window of windowed metrics
    recent: Duration = 1800.0  # default window of internet_up
    percentile: Statistic = "p90"  # default statistic of access_mbps and what derives from it
    stale_after: Duration = 900.0  # agent_fresh: no sample or status for this long: not fresh
    # Measured, not chosen: bench/goodput_tolerance.py, docs/policies.md "Rate tolerance".
    rate_tolerance_pct: float = Field(default=RATE_TOLERANCE_PCT, ge=0, lt=50)
    uptime_threshold_pct: float = Field(default=80.0, ge=0, le=100)
    multimedia_types: list[DeviceType] = Field(default=list(MULTIMEDIA_TYPES), min_length=1)
    # URL prefixes of speed-test servers outside the education network: a test to one of them
    # is internet evidence (internet_up); a test to any other (the district's) server only
    # shows the education network works (edu_network_up).
    internet_speedtest_servers: list[str] = []
    wifi_rssi_dbm: float = Field(default=-67.0, ge=-120, le=0)
    wifi_good_pct: float = Field(default=90.0, ge=0, le=100)
    default_timetable: Timetable = Timetable()
    buckets: int = Field(default=28, ge=2, le=1000)  # per longest window, for uptime and Wi-Fi
    max_speedtests: int = Field(default=256, ge=1, le=100_000)  # kept per school
    max_devices_per_school: int = Field(default=2000, ge=1)
    write_status: bool = True  # also write one school_status point per school and pass
    # Rebuild the state from the stored samples at start (restore.py): seconds for a district,
    # hours for a province's week (docs/benchmarks.md), when a pass on a young state is better.
    restore: bool = True
    # A local file of the state (rules/snapshot.py), written every snapshot_every (0: never) and
    # on a clean shutdown: a restart on this host loads it and replays from storage only what
    # came after it (seconds for a province, docs/benchmarks.md); without it, the whole window.
    snapshot: str = "/var/lib/schoolmon/rules-state.snapshot"
    snapshot_every: DurationOrZero = 60.0
