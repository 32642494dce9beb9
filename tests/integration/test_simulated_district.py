"""Done means: a simulated district of 200 schools through the real broker, collector, rules
engine and InfluxDB gives a report whose shares are exactly what the simulator was told."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from collector.config import CollectorConfig
from collector.reports import Period, ReportData, ReportOptions, write_report
from collector.rules import RulesSettings, build_rules_engine
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Sample
from schoolmon.sim.inventory import plan_inventory, write_inventory
from schoolmon.sim.plan import SchoolPlan, SimulationPlan, make_plan
from schoolmon.sim.spec import SimulationSpec
from schoolmon.simulate import RunOptions, SimulationResult, run_simulation
from tests.conftest import Services, influx_rows, wait_until

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
# Three nights, Tuesday to Thursday, just after midnight: each run backfills the school day
# before, then the rules evaluate (seeing the gateways' midnight samples within their "recent"
# window of 30 min), as the collector's periodic pass would that night.
NIGHTS = [int(dt.datetime(2026, 11, day, 0, 10, tzinfo=ZONE).timestamp() * 1000)
          for day in (17, 18, 19)]
NOW = NIGHTS[-1]
POLICIES = ["cn-moe-2017", "cn-moe-13fyp", "guangzhou-2017"]
TIER_OF = {"<4": 0, "4-10": 4, "10-100": 10, "100-1000": 100, ">=1000": 1000, "none": None}


class SampleCounter:
    """An observer after the rules engine's: when it has seen N samples, so has the engine."""

    def __init__(self) -> None:
        self.samples = 0
        self.lock = threading.Lock()

    def __call__(self, _who: AgentIdentity, samples: list[Sample]) -> None:
        with self.lock:
            self.samples += len(samples)


def fixed(ms: int) -> Callable[[], int]:
    """A clock standing still at ``ms``."""
    return lambda: ms


def count(schools: list[SchoolPlan] | tuple[SchoolPlan, ...], pred: Any) -> int:
    """Schools of the plan for which ``pred`` holds."""
    return sum(1 for s in schools if pred(s))


def run_district(services: Services, db: str, prefix: str, tmp: Path,
                 plan: SimulationPlan) -> tuple[CollectorConfig, Path, list[SimulationResult]]:
    """Simulate, collect, evaluate each night and store the compliance points."""
    inventory_file = tmp / "inventory.yaml"
    inventory = plan_inventory(plan)
    write_inventory(inventory, inventory_file)
    raw = {
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": prefix,
                 "username": None, "client_id": f"sim-collector-{prefix[:8]}",
                 "session_expiry": "60s"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": db},
        # A fixed calendar week (computed by hand): no bound on sample age.
        "write": {"flush_interval": "100ms", "max_sample_age": "0s"},
        "inventory": "inventory.yaml", "policies": POLICIES,
    }
    config_path = tmp / "collector.yaml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    config = CollectorConfig.model_validate(raw)
    # As the collector builds it: from collector.yaml's inventory file and policy names.
    engine = build_rules_engine(RulesSettings(), config.inventory, config.policies, config_path,
                                clock=lambda: NOW)
    assert engine is not None
    counter = SampleCounter()
    collector = Collector(config, build_writer(config), observers=[engine.observe, counter],
                          status_observers=[engine.observe_status])
    collector.start()
    results, published = [], 0
    try:
        assert collector.connected.wait(10)
        time.sleep(0.3)  # SUBACK is not surfaced by paho's on_connect
        for night in NIGHTS:
            result = run_simulation(config.mqtt, plan, RunOptions(interval=3600, backfill=1),
                                    now_ms=fixed(night))
            assert result.acked, result.stats
            published += result.stats.samples
            wait_until(lambda: counter.samples >= published, 60,  # noqa: B023 (called here)
                       "the rules engine saw every sample")
            begun = time.perf_counter()
            lines = engine.pass_lines(night)
            print(f"evaluation pass of {len(POLICIES)} policies, 200 schools: "
                  f"{time.perf_counter() - begun:.2f} s, {len(lines)} points")
            assert collector.write_points(lines)
            results.append(result)
    finally:
        collector.stop()
    return config, config_path, results


def report(config: CollectorConfig, config_path: Path, tmp: Path, policy: str,
           results: list[SimulationResult]) -> ReportData:
    """Write the report of one policy over the simulated period (English labels)."""
    period = Period(results[0].days[0], dt.datetime.fromtimestamp(NOW / 1000, ZONE).date())
    options = ReportOptions(policy, period, tmp / policy, "en")
    return write_report(config, config_path, options, inventory=results[0].inventory)


def shares(data: ReportData) -> dict[str, tuple[int, int]]:
    """(met, counted) per rule of a report."""
    return {s.rule.id: (s.met, s.counted) for s in data.summaries}


def test_report_of_a_simulated_district_matches_the_plan(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path) -> None:
    """200 schools, two school days, every share of three policies as planned."""
    started = time.monotonic()
    plan = make_plan(SimulationSpec(), 200, seed=2026)
    config, config_path, results = run_district(services, influx_db, topic_prefix, tmp_path,
                                                plan)
    schools = plan.schools
    assert [d.isoformat() for r in results for d in r.days] == [
        "2026-11-16", "2026-11-17", "2026-11-18"]
    speedtests = influx_rows(services.influx_url, influx_db,
                             'SELECT count("down_mbps") FROM "speedtest"')
    assert speedtests[0]["count"] == 200 * 3 * plan.spec.speedtests_per_day

    moe = report(config, config_path, tmp_path, "cn-moe-2017", results)
    rooms = [c for s in schools for c in s.ordinary_rooms]
    assert shares(moe) == {
        "access_10m": (count(schools, lambda s: s.access_at_least(10)), 200),
        "internet_connected": (count(schools, lambda s: not s.internet_outage), 200),
        "multimedia_ratio": (sum(c.multimedia_ok for c in rooms), len(rooms)),
        "all_classrooms_school": (count(schools, lambda s: s.multimedia_ratio == 1.0), 200),
    }  # agent freshness is ours (schoolmon-operations), not the document's
    assert moe.summary("access_10m").share_pct == pytest.approx(  # type: ignore[union-attr]
        100 * plan.share_at_least(10))
    assert moe.summary("multimedia_ratio").share_pct == pytest.approx(  # type: ignore[union-attr]
        100 * plan.district_multimedia_ratio())
    assert moe.tiers == {TIER_OF[t]: n for t, n in plan.tier_counts().items()}
    # Every night's evaluation found the planned district: a flat trend, one point per night.
    nights = [dt.date(2026, 11, d) for d in (17, 18, 19)]
    for rule, expected in (("access_10m", 100 * plan.share_at_least(10)),
                           ("multimedia_ratio", 100 * plan.district_multimedia_ratio())):
        assert [p.day for p in moe.trend[rule]] == nights
        assert [p.share_pct for p in moe.trend[rule]] == pytest.approx([expected] * 3)

    fyp = report(config, config_path, tmp_path, "cn-moe-13fyp", results)
    urban = [s for s in schools if s.category == "urban"]
    rural = [s for s in schools if s.category == "rural"]
    points = [s for s in schools if s.category == "teaching_point"]
    schools_ = urban + rural
    assert shares(fyp) == {
        "broadband_schools": (count(schools_, lambda s: s.access_at_least(4)), len(schools_)),
        "broadband_teaching_points": (count(points, lambda s: s.access_at_least(4)),
                                      len(points)),
        "per_class_urban": (count(urban, lambda s: s.per_class_ok()), len(urban)),
        "per_class_rural": (count(rural, lambda s: s.per_class_ok()), len(rural)),
        "teaching_point": (count(points, lambda s: s.access_at_least(4)), len(points)),
        "wireless_campus": (count(urban, lambda s: s.wifi_ratio == 1.0), len(urban)),
    }

    gz = report(config, config_path, tmp_path, "guangzhou-2017", results)
    public = [s for s in schools if s.ownership == "public"]
    got = shares(gz)
    assert got["access_100m"] == (count(schools, lambda s: s.access_at_least(100)), 200)
    assert got["access_1000m"] == (count(public, lambda s: s.access_at_least(1000)), len(public))
    assert got["banbantong"] == (sum(c.multimedia_ok for c in rooms), len(rooms))
    assert got["wireless_campus"] == (count(schools, lambda s: s.wifi_ratio == 1.0), 200)

    # The files say the same: the HTML's summary rows and the CSV rows of the missing schools.
    html = (tmp_path / "cn-moe-2017" / "report.html").read_text(encoding="utf-8")
    share_10m = 100 * plan.share_at_least(10)
    assert f'data-rule="access_10m" data-share="{share_10m:.1f}"' in html
    csv_lines = (tmp_path / "cn-moe-2017" / "report.csv").read_text(
        encoding="utf-8-sig").splitlines()
    missing_10m = {line.split(",")[0] for line in csv_lines
                   if ",access_10m," in line and ",false," in line}
    assert missing_10m == {s.id for s in schools if not s.access_at_least(10)}
    elapsed = time.monotonic() - started
    samples = sum(r.stats.samples for r in results)
    print(f"simulated district: {samples} samples in {elapsed:.1f} s end to end")
