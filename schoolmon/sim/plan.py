"""The simulated district, decided up front from a seed: what every school and room will show.

The plan is the ground truth a test compares the collector's rules and the report with: its
figures are made unambiguous on purpose (every speed test of a school lies inside its tier and
at least 10 % below the next one, so a rule's rate tolerance cannot move it; a
working projector is up in >= 95 % of school hours and a broken one in <= 30 %, a good room's
best RSSI never drops below -66 dBm and a poor room's never rises above -68 dBm), so the rules
find exactly what the plan says whatever percentile or threshold they use.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Literal

from common.vocab import DeviceType
from schoolmon.sim.spec import (
    TIER_BOUNDS,
    TIERS,
    Category,
    SimulationSpec,
    Tier,
    allocate,
)

# Every speed test of a school lies in [SPREAD * high, high]: its tier and per-class figures hold
# for any percentile of its tests.
SPREAD = 0.92
TOLERANCE = 0.1  # rules may accept a rate this much below a nominal target
ISP_SHARE = 0.8  # measured >= 80 % of the contracted rate
PER_CLASS_TARGET = {"urban": 10.0, "rural": 5.0}  # Mbit/s per class (Yunnan 13th FYP)
OFFERINGS = (2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0,
             2000.0, 10000.0)


@dataclass(frozen=True)
class ClassroomPlan:
    """A room: its multimedia device, whether that works, its Wi-Fi and its agent."""

    id: str
    ordinary: bool
    device_id: str
    device_type: DeviceType
    multimedia_ok: bool
    wifi_good: bool | None  # None: no Wi-Fi scan (rooms without a classroom agent)
    agent: str | None  # classroom PC agent; None: the gateway checks the device
    agent_goes_offline: bool = False


@dataclass(frozen=True)
class SchoolPlan:
    """One school: inventory facts and what its samples will show."""

    id: str
    name: str
    district: str
    category: Category
    ownership: Literal["public", "private"]
    level: Literal["primary", "secondary"]
    classes: int
    students: int
    tier: Tier
    contracted_mbps: float
    down_mbps_range: tuple[float, float] | None  # every speed test's down_mbps lies inside
    isp_ok: bool | None  # measured >= 80 % of contract; None without tests
    internet_outage: bool
    link_mbps: float
    gateway_agent: str
    classrooms: tuple[ClassroomPlan, ...]

    @property
    def ordinary_rooms(self) -> list[ClassroomPlan]:
        """The rooms the multimedia and Wi-Fi targets count."""
        return [c for c in self.classrooms if c.ordinary]

    def access_at_least(self, mbps: float) -> bool:
        """Measured access bandwidth (any percentile of its tests) >= mbps."""
        return self.down_mbps_range is not None and self.down_mbps_range[0] >= mbps

    def per_class_ok(self) -> bool | None:
        """Per-class bandwidth meets its category's target; None for teaching points."""
        target = PER_CLASS_TARGET.get(self.category)
        if target is None:
            return None
        return self.access_at_least(target * self.classes)

    @property
    def multimedia_ratio(self) -> float:
        """Working ordinary classrooms / ordinary classrooms."""
        rooms = self.ordinary_rooms
        return sum(c.multimedia_ok for c in rooms) / len(rooms)

    @property
    def wifi_ratio(self) -> float:
        """Ordinary classrooms with good Wi-Fi / ordinary classrooms."""
        rooms = self.ordinary_rooms
        return sum(bool(c.wifi_good) for c in rooms) / len(rooms)

    @property
    def agents(self) -> list[str]:
        """Every agent of the school, gateway first."""
        return [self.gateway_agent, *(c.agent for c in self.classrooms if c.agent)]


@dataclass(frozen=True)
class SimulationPlan:
    """The whole simulated district."""

    seed: int
    spec: SimulationSpec
    districts: tuple[str, ...]
    schools: tuple[SchoolPlan, ...]

    def share(self, meets: list[bool]) -> float:
        """Share of True in a per-school list."""
        return sum(meets) / len(meets) if meets else 0.0

    def share_at_least(self, mbps: float) -> float:
        """Share of schools whose measured access bandwidth is >= mbps."""
        return self.share([s.access_at_least(mbps) for s in self.schools])

    def tier_counts(self) -> dict[str, int]:
        """Schools per tier."""
        return {t: sum(s.tier == t for s in self.schools) for t in TIERS}

    def district_multimedia_ratio(self) -> float:
        """Working ordinary classrooms / ordinary classrooms over the whole district."""
        rooms = [c for s in self.schools for c in s.ordinary_rooms]
        return sum(c.multimedia_ok for c in rooms) / len(rooms)

    def offline_agents(self) -> list[str]:
        """Agents that publish "offline" during the run."""
        return [c.agent for s in self.schools for c in s.classrooms
                if c.agent and c.agent_goes_offline]


def _speed(rng: random.Random, tier: Tier, under: bool, category: Category,
           classes: int) -> tuple[float, float, bool]:
    """(contracted, highest test, isp_ok) so that every test lies in the tier unambiguously."""
    low_t, high_t = TIER_BOUNDS[tier]
    per_class = PER_CLASS_TARGET.get(category)

    def fits(high: float) -> bool:
        low = high * SPREAD
        # Below the next tier even for rules that grant a rate tolerance (up to 10 %).
        if not (low >= low_t and high < high_t * (1 - TOLERANCE)):
            return False
        # The per-class target must be clearly met or clearly missed by every test.
        need = None if per_class is None else per_class * classes
        return need is None or low >= need or high < need * (1 - TOLERANCE)

    for _ in range(300):
        contract = rng.choice(OFFERINGS)
        high = round(contract * (rng.uniform(0.4, 0.75) if under else rng.uniform(0.9, 0.99)), 2)
        if fits(high):
            return contract, high, not under
    for _ in range(300):  # no offering fits: an odd contract, delivered as agreed
        top = min(high_t * (1 - TOLERANCE) * 0.99, 1900.0)
        high = round(rng.uniform(max(low_t / SPREAD * 1.01, 0.5), top), 2)
        if fits(high):
            return round(high / 0.95, 1), high, True
    raise ValueError(f"cannot place a {category} school with {classes} classes in tier {tier}")


def _pick(rng: random.Random, items: list[int], count: int) -> set[int]:
    return set(rng.sample(items, count))


def _rooms(rng: random.Random, spec: SimulationSpec, school_id: str, *, category: Category,
           classes: int, all_working: bool) -> list[ClassroomPlan]:
    rooms = []
    for i in range(classes):
        room = f"{i // 6 + 1}{i % 6 + 1:02d}"
        projector = rng.random() < spec.projector_share
        rooms.append(ClassroomPlan(
            id=room, ordinary=True,
            device_id=f"{'proj' if projector else 'panel'}-{room}",
            device_type="projector" if projector else "panel",
            multimedia_ok=all_working or rng.random() < spec.classroom_working_share,
            wifi_good=rng.random() < spec.wifi_good_share[category],
            agent=f"{school_id}-pc{room}"))
    if category == "urban":
        for j in range(1, rng.randint(0, spec.labs_max) + 1):
            rooms.append(ClassroomPlan(
                id=f"lab-{j}", ordinary=False, device_id=f"pc-lab-{j}", device_type="pc",
                multimedia_ok=rng.random() < 0.5, wifi_good=None, agent=None))
    return rooms


def make_plan(spec: SimulationSpec, schools: int, seed: int) -> SimulationPlan:
    """The district for ``schools`` schools, the same for the same spec, count and seed."""
    if schools < 1:
        raise ValueError("schools: at least 1")
    rng = random.Random(seed)
    districts = tuple(f"{spec.district_prefix}-d{n + 1}" for n in range(spec.districts))
    cats = [c for c, n in allocate(schools, spec.categories).items() for _ in range(n)]
    rng.shuffle(cats)
    idx = list(range(schools))
    tier_counts = allocate(schools, spec.tiers)
    untested = _pick(rng, idx, tier_counts.pop("none", 0))
    # Better-connected tiers go mostly to urban schools, the slowest to teaching points.
    rank = {"teaching_point": 0.0, "rural": 1.0, "urban": 2.0}
    tested = sorted((i for i in idx if i not in untested),
                    key=lambda i: rank[cats[i]] + rng.uniform(0, 2.5))
    tiers: dict[int, Tier] = dict.fromkeys(untested, "none")
    order = iter(tested)
    for tier in TIERS[1:]:
        for _ in range(tier_counts.get(tier, 0)):
            tiers[next(order)] = tier
    urban = [i for i in idx if cats[i] == "urban"]
    private = _pick(rng, urban, allocate(len(urban), {"p": spec.private_share,
                                                      "q": 1 - spec.private_share})["p"])
    under = _pick(rng, tested, allocate(len(tested), {
        "u": spec.isp_underdelivery_share, "o": 1 - spec.isp_underdelivery_share})["u"])
    outage = _pick(rng, idx, allocate(schools, {"o": spec.internet_outage_share,
                                                "k": 1 - spec.internet_outage_share})["o"])
    all_working = _pick(rng, idx, allocate(schools, {
        "a": spec.all_working_share, "b": 1 - spec.all_working_share})["a"])
    plans: list[SchoolPlan] = []
    for i in idx:
        cat = cats[i]
        district = districts[i % len(districts)]
        school_id = f"{district}-{i + 1:04d}"
        cr = spec.classes[cat]
        classes = rng.randint(cr.min, cr.max)
        tier = tiers[i]
        if tier == "none":
            contract, rng_range, isp_ok = rng.choice(OFFERINGS[4:10]), None, None
        else:
            contract, high, isp_ok = _speed(rng, tier, i in under, cat, classes)
            rng_range = (round(high * SPREAD, 2), high)
        per_student = {"urban": 45, "rural": 35, "teaching_point": 12}[cat]
        name = {"urban": "模拟城区学校", "rural": "模拟乡村学校",
                "teaching_point": "模拟教学点"}[cat]
        plans.append(SchoolPlan(
            id=school_id, name=f"{name} {i + 1:03d}", district=district, category=cat,
            ownership="private" if i in private else "public",
            level="secondary" if cat == "urban" and rng.random() < 0.3 else "primary",
            classes=classes, students=classes * per_student + rng.randint(0, 20),
            tier=tier, contracted_mbps=contract, down_mbps_range=rng_range, isp_ok=isp_ok,
            internet_outage=i in outage,
            link_mbps=10000.0 if contract > 1000 else (1000.0 if contract > 100 else 100.0),
            gateway_agent=f"{school_id}-gw",
            classrooms=tuple(_rooms(rng, spec, school_id, category=cat, classes=classes,
                                    all_working=i in all_working))))
    return _with_offline_agents(rng, spec, SimulationPlan(seed, spec, districts, tuple(plans)))


def _with_offline_agents(rng: random.Random, spec: SimulationSpec,
                         plan: SimulationPlan) -> SimulationPlan:
    agents = [c.agent for s in plan.schools for c in s.classrooms if c.agent]
    count = allocate(len(agents), {"o": spec.offline_agent_share,
                                   "k": 1 - spec.offline_agent_share})["o"]
    offline = set(rng.sample(agents, count))
    schools = tuple(
        replace(s, classrooms=tuple(replace(c, agent_goes_offline=c.agent in offline)
                                    for c in s.classrooms))
        for s in plan.schools)
    return SimulationPlan(plan.seed, plan.spec, plan.districts, schools)

