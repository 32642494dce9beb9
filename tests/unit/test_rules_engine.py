"""The engine: applies_to, district shares, compliance points, status, periodic pass, wiring."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from collector.rules import (
    ComplianceResult,
    RulesSettings,
    build_rules_engine,
    compliance_lines,
    status_lines,
    tier_label,
    tier_of,
)
from common.config import ConfigError
from common.wire import AgentIdentity
from tests.rules_fixtures import HOUR, MINUTE, at, av, engine, gw, inventory, school, speedtest

NOW = at(2, 8)
ROOT = Path(__file__).resolve().parents[2]


def test_applies_to_private_and_public() -> None:
    """A public-only rule skips the private school; an all-schools rule checks both."""
    inv = inventory(school("pub"), school("priv", ownership="private"))
    eng, _ = engine(inv, {"id": "g1000", "metric": "access_mbps", "threshold": 1000,
                          "applies_to": {"ownership": ["public"]}},
                    {"id": "g100", "metric": "access_mbps", "threshold": 100}, now_ms=NOW)
    eng.observe(gw("pub"), [speedtest(NOW - HOUR, 940.0)])
    eng.observe(gw("priv"), [speedtest(NOW - HOUR, 120.0)])
    got = {(r.rule, r.school): r.met for r in eng.evaluate()}
    assert got == {("g1000", "pub"): True, ("g100", "pub"): True, ("g100", "priv"): True}


def test_applies_to_category_and_level() -> None:
    """Category and level lists select schools; each list must match."""
    inv = inventory(school("u"), school("r", category="rural"),
                    school("tp", category="teaching_point", level="secondary"))
    eng, _ = engine(inv, {"id": "tp4", "metric": "access_mbps", "threshold": 4,
                          "applies_to": {"category": ["teaching_point", "rural"],
                                         "level": ["primary"]}}, now_ms=NOW)
    assert [r.school for r in eng.evaluate()] == ["r"]


def test_district_share_of_schools() -> None:
    """Share = met / schools with data, per district; no data is counted apart."""
    inv = inventory(school("a"), school("b"), school("c"), school("x", district="d2"))
    eng, _ = engine(inv, {"id": "access_10m", "metric": "access_mbps", "threshold": 10,
                          "scope": "district_share", "share_target": 70}, now_ms=NOW)
    eng.observe(gw("a"), [speedtest(NOW - HOUR, 50.0)])
    eng.observe(gw("b"), [speedtest(NOW - HOUR, 6.0)])
    eng.observe(gw("x", "d2"), [speedtest(NOW - HOUR, 11.0)])
    results = eng.evaluate()
    per_school = {r.school: (r.scope, r.met, r.state) for r in results if r.school}
    assert per_school == {"a": ("school", True, "ok"), "b": ("school", False, "ok"),
                          "c": ("school", False, "no_data"), "x": ("school", True, "ok")}
    shares = [r for r in results if r.scope == "district_share"]
    assert [(r.district, r.value, r.target, r.met, r.counted, r.counted_met, r.counted_no_data,
             r.unit) for r in shares] == [("d1", 50.0, 70.0, False, 2, 1, 1, "schools"),
                                          ("d2", 100.0, 70.0, True, 1, 1, 0, "schools")]


def test_district_share_of_classrooms() -> None:
    """A classroom metric's share counts the district's ordinary classrooms."""
    inv = inventory(school("a"), school("b"))
    eng, _ = engine(inv, {"id": "multimedia_ratio", "metric": "multimedia_uptime",
                          "threshold": 80, "scope": "district_share", "share_target": 80},
                    now_ms=NOW)
    for sid, up in (("a", (True, True)), ("b", (True, False))):
        eng.observe(gw(sid), [av(at(1, 9), f"{sid}-p1", "r1", up[0]),
                              av(at(1, 9), f"{sid}-p2", "r2", up[1], "panel")])
    results = eng.evaluate()
    rooms = [(r.school, r.classroom, r.met) for r in results if r.scope == "classroom"]
    assert rooms == [("a", "r1", True), ("a", "r2", True), ("b", "r1", True), ("b", "r2", False)]
    share = results[-1]
    assert (share.scope, share.value, share.met, share.unit, share.counted) == (
        "district_share", 75.0, False, "classrooms", 4)


def test_all_no_data_district_share() -> None:
    """A district where no school has data: one no_data share point."""
    eng, _ = engine(inventory(school("a")), {"id": "i", "metric": "internet_up",
                                             "threshold": 1, "comparator": "==",
                                             "scope": "district_share", "share_target": 100},
                    now_ms=NOW)
    share = eng.evaluate()[-1]
    assert (share.value, share.state, share.met, share.counted_no_data) == (
        None, "no_data", False, 1)


def test_compliance_lines() -> None:
    """Tags and fields of the compliance measurement, one line per result."""
    results = [
        ComplianceResult("cn-moe-2017", "access_10m", "access_mbps", "school", "d1", "s 1",
                         None, 12.5, 10.0, ">=", True),
        ComplianceResult("p", "link", "class_link_mbps", "classroom", "d1", "s1", "r1", None,
                         100.0, ">=", False, "no_data"),
        ComplianceResult("p", "share", "multimedia_uptime", "district_share", "d1", None, None,
                         75.0, 80.0, ">=", False, "ok", "classrooms", 4, 3, 1),
    ]
    assert compliance_lines(results, 1_700_000_000_000) == [
        "compliance,district=d1,metric=access_mbps,policy=cn-moe-2017,rule=access_10m,"
        "school=s\\ 1,scope=school value=12.5,target=10.0,met=true,state=\"ok\" 1700000000000",
        "compliance,classroom=r1,district=d1,metric=class_link_mbps,policy=p,rule=link,school=s1,"
        "scope=classroom target=100.0,met=false,state=\"no_data\" 1700000000000",
        "compliance,district=d1,metric=multimedia_uptime,policy=p,rule=share,"
        "scope=district_share value=75.0,target=80.0,met=false,state=\"ok\",classrooms=4.0,"
        "classrooms_met=3.0,classrooms_no_data=1.0 1700000000000",
    ]


def test_school_status_and_tiers() -> None:
    """Status: tier, access state, devices up/down, agents; None for an unknown school."""
    inv = inventory(school("s1"), school("s2"))
    eng, clock = engine(inv, now_ms=NOW)
    eng.observe(gw("s1"), [speedtest(NOW - HOUR, 95.0), av(NOW - MINUTE, "s1-p1", "r1", True),
                           av(NOW - MINUTE, "s1-p2", "r2", False, "panel")])
    status = eng.school_status("s1")
    assert status is not None
    assert (status.access_mbps, status.access_state, status.tier_mbps) == (95.0, "ok", 100)
    assert (status.devices_up, status.devices_down) == (1, 1)
    assert status.isp_pct == 95.0 and status.per_class_mbps == 9.5
    assert [(a.id, a.fresh) for a in status.agents] == [("s1-gw", True)]
    assert eng.school_status("nope") is None
    quiet = eng.school_status("s2")
    assert quiet is not None
    assert (quiet.access_state, quiet.tier_mbps, quiet.last_seen_ms) == (
        "no_recent_test", None, None)
    assert [d.up for d in quiet.devices] == [None, None]
    clock.now_ms = NOW + 8 * 24 * HOUR
    later = eng.school_status("s1")
    assert later is not None and later.access_state == "no_recent_test"
    lines = status_lines(eng.statuses(NOW), NOW)
    assert lines[0].startswith("school_status,category=urban,district=d1,ownership=public,"
                               "school=s1 access_state=\"ok\",devices_up=1.0,devices_down=1.0,"
                               "access_mbps=95.0,tier_mbps=100.0")
    assert 'access_state="no_recent_test"' in lines[1]


@pytest.mark.parametrize(("mbps", "tier"), [(0.5, 0), (3.5, 0), (3.7, 4), (9.3, 10), (95.8, 100),
                                            (919.0, 100), (956.4, 1000), (2500.0, 1000)])
def test_tier_of(mbps: float, tier: int) -> None:
    """Tiers < 4, 4, 10, 100, 1000 with an 8 % goodput tolerance."""
    assert tier_of(mbps, 8.0) == tier
    assert tier_label(tier) == ("<4M" if tier == 0 else f"{tier}M")


def test_unknown_school_is_counted_not_checked() -> None:
    """Samples of a school missing from the inventory are counted and ignored."""
    eng, _ = engine(inventory(school("s1")), {"id": "a", "metric": "access_mbps",
                                              "threshold": 1}, now_ms=NOW)
    eng.observe(AgentIdentity("d1", "ghost", "ghost-gw"), [speedtest(NOW, 5.0)] * 3)
    eng.observe_status(AgentIdentity("d1", "ghost", "ghost-gw"), "online", NOW)
    assert eng.unknown_school_samples == 3
    assert [r.school for r in eng.evaluate()] == ["s1"]


def test_run_periodic_writes_each_pass_until_stopped() -> None:
    """Each pass hands compliance and school_status lines to write_points; stop ends it."""
    eng, _ = engine(inventory(school("s1")), {"id": "a", "metric": "access_mbps",
                                              "threshold": 1}, now_ms=NOW)
    eng.observe(gw("s1"), [speedtest(NOW - HOUR, 5.0)])
    stop = threading.Event()
    written: list[list[str]] = []

    def write_points(lines: list[str]) -> bool:
        written.append(lines)
        if len(written) == 2:
            stop.set()
        return True

    eng.run_periodic(write_points, stop, interval=0.01)
    assert len(written) == 2
    assert [line.split(",", 1)[0] for line in written[0]] == ["compliance", "school_status"]
    assert written[0][0].endswith(f" {NOW}")

    refused: list[int] = []

    def refuse(lines: list[str]) -> bool:
        refused.append(len(lines))
        return False  # the collector is stopping: the loop must end

    eng.run_periodic(refuse, threading.Event(), interval=0.01)
    assert len(refused) == 1


def write(path: Path, data: object) -> Path:
    """A YAML file."""
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_build_from_collector_config_paths(tmp_path: Path) -> None:
    """Inventory and policies relative to collector.yaml; None when rules cannot run."""
    config = tmp_path / "collector.yaml"
    inv = {"districts": [{"id": "d1", "name": "d"}], "schools": [school("s1")]}
    write(tmp_path / "inventory.yaml", inv)
    engine_ = build_rules_engine(RulesSettings(), "inventory.yaml", ["cn-moe-2017"], config)
    assert engine_ is not None
    assert [p.name for p in engine_.policies] == ["cn-moe-2017"]
    assert build_rules_engine(RulesSettings(), None, ["cn-moe-2017"], config) is None
    assert build_rules_engine(RulesSettings(), "inventory.yaml", [], config) is None
    off = RulesSettings(enabled=False)
    assert build_rules_engine(off, "inventory.yaml", ["cn-moe-2017"], config) is None


def test_build_reports_config_errors(tmp_path: Path) -> None:
    """A missing policy and an unknown school time zone are ConfigError lines with paths."""
    config = tmp_path / "collector.yaml"
    write(tmp_path / "inventory.yaml", {"districts": [{"id": "d1", "name": "d"}],
                                        "schools": [school("s1")]})
    with pytest.raises(ConfigError) as exc:
        build_rules_engine(RulesSettings(), "inventory.yaml", ["nope"], config)
    assert exc.value.lines[0].startswith(f"{config}: policies.0: no policy 'nope'")
    write(tmp_path / "inventory.yaml", {"districts": [{"id": "d1", "name": "d"}],
                                        "schools": [school("s1", timezone="Mars/Olympus")]})
    with pytest.raises(ConfigError) as exc:
        build_rules_engine(RulesSettings(), "inventory.yaml", ["cn-moe-2017"], config)
    assert exc.value.lines == [f"{tmp_path / 'inventory.yaml'}: schools.0.timezone: unknown "
                               "time zone 'Mars/Olympus'"]


def test_settings_section_validates() -> None:
    """The rules: section: durations, statistic and bounds are checked."""
    settings = RulesSettings.model_validate({"interval": "1m", "window": "30d",
                                             "percentile": "p95"})
    assert (settings.interval, settings.window, settings.percentile) == (60.0, 2_592_000.0,
                                                                         "p95")
    with pytest.raises(ValueError, match="not a statistic"):
        RulesSettings.model_validate({"percentile": "top"})
    with pytest.raises(ValueError, match="extra"):
        RulesSettings.model_validate({"windows": "7d"})


def test_example_inventory_with_every_profile() -> None:
    """The shipped inventory example runs against every shipped profile."""
    names = sorted(p.stem for p in (ROOT / "configs" / "policies").glob("*.yaml"))
    eng = build_rules_engine(RulesSettings(), "inventory.example.yaml", names,
                             ROOT / "configs" / "collector.example.yaml")
    assert eng is not None
    results = eng.evaluate(NOW)
    assert {r.policy for r in results} == set(names)
    teaching_point = [r for r in results if r.rule == "teaching_point" and r.school]
    assert [r.school for r in teaching_point] == ["gz-th-tp-07"]
