"""What a simulated district should look like: shares, sizes and fault rates (YAML or defaults).

Every share is exact over the district (largest-remainder allocation), so a test can compute
what the rules must find: with 200 schools and ``tiers: {"10-100": 0.35}``, exactly 70 schools
measure between 10 and 100 Mbit/s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeVar

from pydantic import Field, model_validator

from common.config import Strict
from common.timetable import Timetable

Category = Literal["urban", "rural", "teaching_point"]
CATEGORIES: Final[tuple[Category, ...]] = ("urban", "rural", "teaching_point")
Tier = Literal["none", "<4", "4-10", "10-100", "100-1000", ">=1000"]
# Measured access bandwidth bounds of each tier, Mbit/s: [low, high).
TIER_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "<4": (0.0, 4.0), "4-10": (4.0, 10.0), "10-100": (10.0, 100.0),
    "100-1000": (100.0, 1000.0), ">=1000": (1000.0, math.inf),
}
K = TypeVar("K")
TIERS: Final[tuple[Tier, ...]] = ("none", "<4", "4-10", "10-100", "100-1000", ">=1000")


def _check_shares(name: str, shares: Mapping[Any, float]) -> None:
    total = sum(shares.values())
    if any(v < 0 for v in shares.values()) or not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"{name}: shares must be >= 0 and add up to 1 (they add up to {total:g})")


class ClassRange(Strict):
    """Number of classes (one ordinary classroom each) of a school category."""

    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self) -> ClassRange:
        if self.max < self.min:
            raise ValueError("max: must be >= min")
        return self


class SimulationSpec(Strict):
    """The district to simulate; every key has a realistic default."""

    districts: int = Field(default=1, ge=1, le=100)
    district_prefix: str = Field(default="sim", pattern=r"^[a-z][a-z0-9-]{0,15}$")
    # 东部/中部/西部 of the districts (the policies' regional targets); central: neither the
    # east's "无线网络全覆盖" for every school nor a western exception.
    region: Literal["east", "central", "west"] = "central"
    # County-level district: mostly rural schools, some urban ones in the county town.
    categories: dict[Category, float] = {"urban": 0.3, "rural": 0.5, "teaching_point": 0.2}
    # Share of schools per measured access-bandwidth tier; "none": no speed test at all.
    tiers: dict[Tier, float] = {"none": 0.0, "<4": 0.03, "4-10": 0.07, "10-100": 0.30,
                                "100-1000": 0.45, ">=1000": 0.15}
    classes: dict[Category, ClassRange] = {
        "urban": ClassRange(min=18, max=36), "rural": ClassRange(min=6, max=12),
        "teaching_point": ClassRange(min=1, max=3),
    }
    private_share: float = Field(default=0.1, ge=0, le=1)  # of urban schools
    labs_max: int = Field(default=2, ge=0, le=10)  # non-ordinary rooms of an urban school
    # Multimedia: share of schools where every ordinary classroom works; elsewhere each
    # classroom works with ``classroom_working_share``.
    all_working_share: float = Field(default=0.6, ge=0, le=1)
    classroom_working_share: float = Field(default=0.7, ge=0, le=1)
    projector_share: float = Field(default=0.6, ge=0, le=1)  # else an interactive panel
    # A working device is up in at least this share of a day's school-hour samples, a broken
    # one in at most ``broken_uptime_max`` (so any sensible threshold tells them apart).
    working_uptime_min: float = Field(default=0.95, gt=0.5, le=1)
    broken_uptime_max: float = Field(default=0.3, ge=0, lt=0.5)
    wifi_good_share: dict[Category, float] = {"urban": 0.9, "rural": 0.6, "teaching_point": 0.4}
    internet_outage_share: float = Field(default=0.03, ge=0, le=1)
    isp_underdelivery_share: float = Field(default=0.1, ge=0, le=1)
    offline_agent_share: float = Field(default=0.02, ge=0, le=1)  # classroom agents
    speedtests_per_day: int = Field(default=2, ge=1, le=24)
    speedtest_server: str = "http://10.20.0.5:8080"
    school_ssid: str = "School-WiFi"
    timetable: Timetable = Timetable()

    @model_validator(mode="after")
    def _shares(self) -> SimulationSpec:
        _check_shares("categories", self.categories)
        _check_shares("tiers", self.tiers)
        for cat in CATEGORIES:
            if cat not in self.classes:
                raise ValueError(f"classes: missing category {cat!r}")
            if cat not in self.wifi_good_share:
                raise ValueError(f"wifi_good_share: missing category {cat!r}")
        return self


def allocate(total: int, shares: Mapping[K, float]) -> dict[K, int]:
    """Split ``total`` items by ``shares`` exactly (largest remainder, ties in key order)."""
    raw = {k: total * v for k, v in shares.items()}
    counts = {k: math.floor(v + 1e-9) for k, v in raw.items()}
    left = total - sum(counts.values())
    keys = list(shares)
    by_remainder = sorted(keys, key=lambda k: (-(raw[k] - counts[k]), keys.index(k)))
    for key in by_remainder[:left]:
        counts[key] += 1
    return counts
