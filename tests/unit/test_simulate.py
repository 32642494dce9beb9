"""The simulator without a broker: the plan, its determinism, and samples that follow it."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest

from collector.inventory import load_inventory
from common.config import ConfigError, load_model
from common.timetable import Timetable
from common.wire import Envelope, Sample, decode_envelope, encode_envelope
from schoolmon.sim.district import DistrictSim
from schoolmon.sim.inventory import plan_inventory, write_inventory
from schoolmon.sim.plan import SPREAD, TOLERANCE, SimulationPlan, make_plan
from schoolmon.sim.spec import TIER_BOUNDS, SimulationSpec, allocate
from schoolmon.sim.timeline import backfill_days, midnight_ms, school_end_ms, school_ticks
from schoolmon.simulate import plan_json

TT = Timetable()
TUESDAY = dt.date(2026, 11, 17)


def backfill(plan: SimulationPlan, step: float = 1800.0) -> list[tuple[str, list[Sample]]]:
    """Monday 2026-11-16 of the plan, from midnight to Tuesday 00:10, as (agent, samples)."""
    start = midnight_ms(TT, dt.date(2026, 11, 16))
    outage = school_end_ms(TT, dt.date(2026, 11, 16))
    sim = DistrictSim(plan, step, outage)
    return [(b.who.agent, b.samples) for b in sim.backfill(start, start + 86_400_000 + 600_000)]


def test_same_seed_same_district_and_samples_other_seed_other() -> None:
    """Plan and every sample are a function of the seed (and the clock)."""
    spec = SimulationSpec()
    a, b, c = make_plan(spec, 30, 7), make_plan(spec, 30, 7), make_plan(spec, 30, 8)
    assert a == b
    assert a != c
    assert backfill(a) == backfill(b)
    assert backfill(a) != backfill(c)


def test_allocate_is_exact() -> None:
    """Largest remainder: counts add up to the total, each within one of total * share."""
    counts = allocate(7, {"a": 0.5, "b": 0.3, "c": 0.2})
    assert counts == {"a": 4, "b": 2, "c": 1}
    for total in (1, 3, 200, 999):
        got = allocate(total, {"x": 0.03, "y": 0.07, "z": 0.9})
        assert sum(got.values()) == total
        assert abs(got["x"] - total * 0.03) < 1


def test_plan_has_the_exact_shares_of_its_spec() -> None:
    """Categories, tiers, outages, all-working schools and offline agents are exact counts."""
    spec = SimulationSpec(internet_outage_share=0.05, offline_agent_share=0.1)
    plan = make_plan(spec, 200, 3)
    assert Counter(s.category for s in plan.schools) == {"urban": 60, "rural": 100,
                                                        "teaching_point": 40}
    assert plan.tier_counts() == {"none": 0, "<4": 6, "4-10": 14, "10-100": 60,
                                  "100-1000": 90, ">=1000": 30}
    assert sum(s.internet_outage for s in plan.schools) == 10
    agents = sum(1 for s in plan.schools for c in s.classrooms if c.agent)
    assert len(plan.offline_agents()) == round(agents * 0.1)
    assert plan.share_at_least(10) == pytest.approx(0.9)
    assert plan.share_at_least(1000) == pytest.approx(0.15)
    private = [s for s in plan.schools if s.ownership == "private"]
    assert len(private) == 6 and all(s.category == "urban" for s in private)


def test_speed_ranges_are_unambiguous() -> None:
    """Every test of a school lies in its tier, 10 % clear of the next, and of the per-class and
    ISP thresholds, so any percentile and any tolerance up to 10 % gives the planned answer."""
    spec = SimulationSpec(tiers={"none": 0.05, "<4": 0.1, "4-10": 0.15, "10-100": 0.2,
                                 "100-1000": 0.3, ">=1000": 0.2})
    plan = make_plan(spec, 300, 11)
    assert plan.tier_counts()["none"] == 15
    for s in plan.schools:
        if s.tier == "none":
            assert s.down_mbps_range is None and s.isp_ok is None
            continue
        assert s.down_mbps_range is not None
        low, high = s.down_mbps_range
        assert low == pytest.approx(high * SPREAD, abs=0.01)
        t_low, t_high = TIER_BOUNDS[s.tier]
        assert t_low <= low and high < t_high * (1 - TOLERANCE)
        assert (low >= 0.8 * s.contracted_mbps) if s.isp_ok else (high < 0.8 * s.contracted_mbps)
        need = {"urban": 10.0, "rural": 5.0}.get(s.category)
        if need is not None:
            assert low >= need * s.classes or high < need * s.classes * (1 - TOLERANCE)
            assert s.per_class_ok() == (low >= need * s.classes)


def test_spec_shares_must_add_up() -> None:
    """A spec file with tier shares that do not add up to 1 is a config error with the path."""
    with pytest.raises(ConfigError) as err:
        load_model(SimulationSpec, "spec.yaml", data={"tiers": {"<4": 0.5, "4-10": 0.2}})
    assert err.value.lines == ["spec.yaml: tiers: shares must be >= 0 and add up to 1 "
                               "(they add up to 0.7)"]
    with pytest.raises(ConfigError) as err:
        load_model(SimulationSpec, "spec.yaml", data={"colours": 3})
    assert err.value.lines == ["spec.yaml: colours: unknown key"]


def test_samples_follow_the_plan() -> None:
    """Devices, Wi-Fi, speed tests and outages in the samples are what the plan says."""
    spec = SimulationSpec(internet_outage_share=0.2)
    plan = make_plan(spec, 12, 5)
    batches = backfill(plan)
    by_agent: dict[str, list[Sample]] = defaultdict(list)
    for agent, samples in batches:
        assert len(samples) <= 500
        by_agent[agent].extend(samples)
    outage_from = school_end_ms(TT, dt.date(2026, 11, 16))
    for school in plan.schools:
        gw = by_agent[school.gateway_agent]
        assert len([s for s in gw if s.kind == "host"]) == 49  # every 30 min, 00:00..00:00
        tests = [s.fields["down_mbps"] for s in gw if s.kind == "speedtest"]
        assert len(tests) == spec.speedtests_per_day
        assert school.down_mbps_range is not None
        assert all(school.down_mbps_range[0] <= float(v) <= school.down_mbps_range[1]
                   for v in tests)
        reach = [s for s in gw if s.kind == "reach"]
        down = {s.ts_ms for s in reach if s.fields["up"] is False}
        expected = {s.ts_ms for s in reach if school.internet_outage and s.ts_ms >= outage_from}
        assert down == expected
        for room in school.ordinary_rooms:
            samples = by_agent[room.agent or ""]
            av = [s for s in samples if s.kind == "av"]
            assert len(av) == 17  # school-hour ticks of a day at 30 min
            up = sum(s.fields["online"] is True for s in av) / len(av)
            assert up >= 0.95 if room.multimedia_ok else up <= 0.3
            scans: dict[int, float] = {}
            for s in samples:
                if s.kind == "wifi":
                    scans[s.ts_ms] = max(scans.get(s.ts_ms, -200.0), float(s.fields["rssi_dbm"]))
            assert len(scans) == 17
            assert all((v >= -66) if room.wifi_good else (v <= -68) for v in scans.values())


def test_batches_are_valid_envelopes() -> None:
    """Every batch encodes and decodes under the wire contract's limits."""
    plan = make_plan(SimulationSpec(), 4, 9)
    for agent, samples in backfill(plan, step=600):
        payload = encode_envelope(Envelope("sim-d1", agent.rsplit("-", 1)[0], agent, 1, 1,
                                           samples))
        assert decode_envelope(payload).samples == samples


def test_projector_errors_only_in_broken_rooms() -> None:
    """A broken projector that answers reports a lamp error; working ones at most warnings."""
    plan = make_plan(SimulationSpec(classroom_working_share=0.3, all_working_share=0.0), 10, 2)
    rooms = {c.agent: c for s in plan.schools for c in s.classrooms}
    errors: Counter[bool] = Counter()
    for agent, samples in backfill(plan):
        for s in samples:
            if s.kind == "av" and s.tags["device_type"] == "projector" and s.fields["online"]:
                room = rooms[agent]
                assert (s.fields["err_lamp"] == 2) != room.multimedia_ok
                assert max(int(v) for k, v in s.fields.items() if k.startswith("err_")) <= (
                    1 if room.multimedia_ok else 2)
                errors[room.multimedia_ok] += 1
    assert errors[True] > 0 and errors[False] > 0


def test_inventory_matches_the_plan_and_validates(tmp_path: Path) -> None:
    """The written inventory passes check-config and lists every school, room and agent."""
    plan = make_plan(SimulationSpec(), 20, 4)
    path = tmp_path / "inventory.yaml"
    write_inventory(plan_inventory(plan), path)
    inventory = load_inventory(path)
    assert [s.id for s in inventory.schools] == [s.id for s in plan.schools]
    for inv, sch in zip(inventory.schools, plan.schools, strict=True):
        assert inv.category == sch.category and inv.contracted_mbps == sch.contracted_mbps
        assert inv.classes == len(sch.ordinary_rooms)
        assert {d.id for d in inv.devices} == {c.device_id for c in sch.classrooms}
    assert {a.id for a in inventory.agents} == {a for s in plan.schools for a in s.agents}
    data = orjson.loads(plan_json(plan))
    assert data["schools"][0]["id"] == plan.schools[0].id and data["seed"] == 4


def test_timeline_skips_weekends_and_holidays() -> None:
    """Backfill days are school days; school ticks are on the half-hour grid in school hours."""
    assert backfill_days(TT, TUESDAY, 3) == [dt.date(2026, 11, 12), dt.date(2026, 11, 13),
                                             dt.date(2026, 11, 16)]
    holiday = Timetable(holidays=["2026-11-13"])
    assert backfill_days(holiday, TUESDAY, 2) == [dt.date(2026, 11, 12), dt.date(2026, 11, 16)]
    ticks = school_ticks(TT, TUESDAY, 1800)
    base = midnight_ms(TT, TUESDAY)
    hours = [(t - base) / 3_600_000 for t in ticks]
    assert hours[:2] == [7.5, 8.0] and hours[-1] == 17.0 and len(ticks) == 17
    assert school_ticks(TT, dt.date(2026, 11, 15), 1800) == []  # a Sunday
