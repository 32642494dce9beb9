"""Who a rule applies to: the texts' qualifiers, missing attributes, and network-node rules."""

from __future__ import annotations

import pytest

from collector.inventory import Inventory
from collector.rules import RulesEngine, RulesSettings
from common.config import ConfigError
from common.wire import AgentIdentity, Sample
from tests.rules_fixtures import HOUR, MINUTE, at, engine, gw, inventory, profile, school, speedtest

NOW = at(2, 8)


def applied(eng: RulesEngine) -> set[tuple[str, str | None]]:
    """(rule, school) of every school-scope result of a pass."""
    return {(r.rule, r.school) for r in eng.evaluate() if r.scope == "school"}


def test_where_conditions_allow_and_compulsory_and_demonstration() -> None:
    """有条件的 rural schools only; 义务教育 by levels taught; 示范学校 only when listed."""
    inv = inventory(
        school("rq", category="rural"),
        school("ru", category="rural", qualified=False),
        school("sr", level="secondary", levels=["senior"]),
        school("jr", level="combined", levels=["junior", "senior"]),
        school("demo", demonstration=True))
    eng, _ = engine(
        inv,
        {"id": "rural5", "metric": "per_class_mbps", "threshold": 5,
         "applies_to": {"category": ["rural"], "qualified": True}},
        {"id": "compulsory", "metric": "access_mbps", "threshold": 1,
         "applies_to": {"compulsory": True}},
        {"id": "demo", "metric": "access_mbps", "threshold": 4,
         "applies_to": {"demonstration": True}}, now_ms=NOW)
    assert applied(eng) == {
        ("rural5", "rq"),
        # level primary (the default) implies levels [primary]: compulsory
        ("compulsory", "rq"), ("compulsory", "ru"), ("compulsory", "jr"), ("compulsory", "demo"),
        ("demo", "demo")}


def test_east_or_qualified_urban() -> None:
    """东部和具备条件的城镇各类学校: every school in the east, and qualified urban schools."""
    inv = Inventory.model_validate({
        "districts": [{"id": "e", "name": "e", "region": "east"},
                      {"id": "w", "name": "w", "region": "west"}],
        "schools": [school("e-rural", "e", category="rural"),
                    school("e-urban-unq", "e", qualified=False),
                    school("w-urban", "w"), school("w-urban-unq", "w", qualified=False),
                    school("w-rural", "w", category="rural"),
                    school("w-but-east", "w", category="rural", region="east")]})
    eng, _ = engine(inv, {"id": "wifi", "metric": "wifi_coverage", "threshold": 100,
                          "applies_to": {"any_of": [
                              {"region": ["east"]}, {"category": ["urban"], "qualified": True}]}},
                    now_ms=NOW)
    assert {s for _r, s in applied(eng)} == {"e-rural", "e-urban-unq", "w-urban", "w-but-east"}


def test_missing_attribute_is_a_config_error_naming_the_school() -> None:
    """A rule by region (or levels) and a school without it: one line per school and attribute."""
    inv = inventory(school("a"), school("b", level="secondary"), districts=("d1",))
    rules = profile({"id": "east", "metric": "access_mbps", "threshold": 10,
                     "applies_to": {"region": ["east"]}},
                    {"id": "cmp", "metric": "access_mbps", "threshold": 10,
                     "applies_to": {"compulsory": True}}, name="p")
    with pytest.raises(ConfigError) as exc:
        RulesEngine(inv, [rules], RulesSettings(), origin="inv.yaml")
    assert exc.value.lines == [
        "inv.yaml: schools.0.region: school 'a' has no region, which rule p/east needs "
        "(applies_to); set it on the school or its district",
        "inv.yaml: schools.1.region: school 'b' has no region, which rule p/east needs "
        "(applies_to); set it on the school or its district",
        "inv.yaml: schools.1.levels: school 'b' has no levels, which rule p/cmp needs "
        "(applies_to)"]


def port(ts: int, device: str, ifname: str, mbps: float, up: bool = True) -> Sample:
    """A switch/router port as the SNMP probe reports it."""
    return Sample("netdev_if", ts, {"device": device, "ifname": ifname},
                  {"speed_mbps": mbps, "up": up})


def test_network_rules_on_the_network_node() -> None:
    """City egress (sum of egress ports) and the link to each district (slowest peer) are the
    city node's, from its own agent's ports; a school's switch ports never count."""
    inv = Inventory.model_validate({
        "districts": [{"id": "d1", "name": "d1"}, {"id": "d2", "name": "d2"}],
        "schools": [school("s1")],
        "networks": [{"id": "city", "name": "city net", "district": "d1", "level": "city",
                      "links": [
                          {"device": "core", "ifname": "x1", "role": "egress"},
                          {"device": "core", "ifname": "x2", "role": "egress"},
                          {"device": "core", "ifname": "x3", "role": "egress"},
                          {"device": "core", "ifname": "x4", "role": "egress"},
                          {"device": "core", "ifname": "t1", "role": "district_link",
                           "peer": "d1"},
                          {"device": "core", "ifname": "t2", "role": "district_link",
                           "peer": "d2"}]}],
        "agents": [{"id": "s1-gw", "school": "s1"},
                   {"id": "city-snmp", "school": "city", "role": "server"}]})
    eng, _ = engine(inv,
                    {"id": "egress", "metric": "egress_mbps", "threshold": 40000,
                     "applies_to": {"network": ["city"]}},
                    {"id": "links", "metric": "district_link_mbps", "threshold": 10000,
                     "applies_to": {"network": ["city"]}},
                    {"id": "school_rule", "metric": "access_mbps", "threshold": 10},
                    now_ms=NOW)
    city = AgentIdentity("d1", "city", "city-snmp")
    eng.observe(city, [port(NOW - MINUTE, "core", f"x{i}", 10000) for i in (1, 2, 3, 4)]
                + [port(NOW - MINUTE, "core", "t1", 10000),
                   port(NOW - MINUTE, "core", "t2", 10000, up=False)])
    eng.observe(gw("s1"), [speedtest(NOW - HOUR, 50.0),
                           port(NOW - MINUTE, "core", "x1", 100000)])  # a school's own switch
    got = {(r.rule, r.school): (r.value, r.met) for r in eng.evaluate()}
    assert got == {("egress", "city"): (40000.0, True), ("links", "city"): (0.0, False),
                   ("school_rule", "s1"): (50.0, True)}
    assert [s.school for s in eng.statuses(NOW)] == ["s1"]  # a network node is no school
    assert eng.school_status("city") is None
