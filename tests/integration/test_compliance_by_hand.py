"""A district of ten schools whose every verdict was computed by hand, through the real broker,
collector, rules engine, InfluxDB and ``schoolmon report`` (issue 15, part 4).

The week of Monday 2026-11-23 in district ``hx`` (region central; school S5 sets its own region,
east). The rules evaluate once, at Friday 2026-11-27 18:00 (Asia/Shanghai), with the settings
written in collector.yaml below: window 7 d, internet evidence within 30 min, p90 (nearest rank:
the ceil(0.9 n)-th smallest test), rate tolerance 8 % (10M is met from 9.2, 5M from 4.6, 4M from
3.68), a classroom's multimedia counts when up >= 80 % of its school-hour checks, Wi-Fi covers a
room when >= 90 % of its school-hour scans have the school SSID at >= -67 dBm. School hours are
Mon-Fri 07:30-12:00 and 13:30-17:30; S7 has a holiday on Wednesday 11-25.

Samples per school (all from its gateway agent):
- speed tests to the district's server at 07:00 and 12:30, Monday to Friday (10 tests);
- each equipped room's projector or panel checked at 09, 10, 11, 14, 15, 16 h (30 school-hour
  checks), some also at 20:00 (outside school hours: never counted);
- Wi-Fi scans at 10:30 and 15:30 (10 per room);
- reach checks at 17:50 Friday (10 min before the evaluation).

| school | kind | classes | rooms: device uptime in school hours |
|---|---|---|---|
| S1 | urban | 10 | r1 100 %, r2 100 % |
| S2 | urban | 10 | r1 100 %, r2 24/30 = 80 % exactly (+5 offline at 20:00) |
| S3 | urban | 12 | r1 100 %, r2 100 %, r3 and r4 without any device |
| S4 | rural | 6 | r1 100 %, r2 100 % |
| S5 | rural, NOT qualified, east | 6 | r1 0 % |
| S6 | rural | 4 | r1 100 %, r2 100 % |
| S7 | urban, holiday Wed | 8 | r1 22/24 = 91.7 % (Wed offline: holiday), r2 100 % |
| S8 | urban, silent | 5 | r1, r2 equipped, never heard |
| S9 | teaching point | 2 | r1 100 % (panel) |
| S10 | teaching point, NOT qualified | 2 | r1 without any device |

| school | speed tests (p90) | reach at 17:50 | Wi-Fi scans |
|---|---|---|---|
| S1 | 10 x 100 (100) | internet up, hub up | r1, r2 good (+ poor at 21:00) |
| S2 | 10 x 92 (92) | internet up | r1 good, r2 poor |
| S3 | 10 x 9.2 (9.2) | internet DOWN, hub up | none |
| S4 | 10 x 27.6 (27.6) | internet up | - |
| S5 | 10 x 20 (20) | internet down, hub down | r1 good |
| S6 | 9 x 8, 500 (Wed), 8 at 17:40 (10th of 11: 8) | none: a test to the hub | - |
| S7 | 10 x 80 (80) | internet up | r1, r2 good |
| S8 | none | none | none |
| S9 | 10 x 3.68, 3.68 at 17:45 to an internet server | none | - |
| S10 | 10 x 2 (2) | internet down | - |
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from collector.config import CollectorConfig
from collector.rules import RulesEngine, build_rules_engine
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Envelope, Sample, Topics, encode_envelope
from tests.conftest import Services, influx_rows, schoolmon_cmd, wait_until
from tests.integration.test_rules_pipeline import publish

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
DISTRICT = "hx"
HUB = "http://hub.hx.edu:8080/"  # the district's speed-test server: the education network
OUTSIDE = "https://speed.example.net/"  # a server outside the education network


def at(day: int, hour: int, minute: int = 0) -> int:
    """ms of Monday 2026-11-23 + ``day`` days, hh:mm Shanghai time."""
    when = dt.datetime(2026, 11, 23 + day, hour, minute, tzinfo=ZONE)
    return int(when.timestamp() * 1000)


NOW = at(4, 18)  # Friday 18:00: the evaluation
CHECKS = [(d, h) for d in range(5) for h in (9, 10, 11, 14, 15, 16)]  # 30 school-hour checks
TESTS = [at(d, h, m) for d in range(5) for h, m in ((7, 0), (12, 30))]
HOLIDAY = {"timezone": "Asia/Shanghai", "days": ["mon", "tue", "wed", "thu", "fri"],
           "hours": ["07:30-12:00", "13:30-17:30"], "holidays": ["2026-11-25"]}


def school(sid: str, category: str, classes: int, rooms: dict[str, bool],
           **extra: Any) -> dict[str, Any]:
    """An inventory entry; ``rooms`` maps each ordinary room to whether it has a projector."""
    return {"id": sid, "name": f"School {sid}", "district": DISTRICT, "category": category,
            "classes": classes, "classrooms": [{"id": r} for r in rooms],
            "devices": [{"id": f"{sid}-{r}", "classroom": r,
                         "type": "panel" if category == "teaching_point" else "projector"}
                        for r, equipped in rooms.items() if equipped], **extra}


INVENTORY = {
    "districts": [{"id": DISTRICT, "name": "Haixi", "region": "central"}],
    "schools": [
        school("s1", "urban", 10, {"r1": True, "r2": True}),
        school("s2", "urban", 10, {"r1": True, "r2": True}),
        school("s3", "urban", 12, {"r1": True, "r2": True, "r3": False, "r4": False}),
        school("s4", "rural", 6, {"r1": True, "r2": True}),
        school("s5", "rural", 6, {"r1": True}, qualified=False, region="east"),
        school("s6", "rural", 4, {"r1": True, "r2": True}),
        school("s7", "urban", 8, {"r1": True, "r2": True}, timetable=HOLIDAY),
        school("s8", "urban", 5, {"r1": True, "r2": True}),
        school("s9", "teaching_point", 2, {"r1": True}),
        school("s10", "teaching_point", 2, {"r1": False}, qualified=False),
    ],
    # The city education network: four 10G egress ports, a 10G link to hx, a 1G link to hy.
    "networks": [{"id": "city-net", "name": "City education network", "district": DISTRICT,
                  "level": "city", "links": [
                      *({"device": "core", "ifname": f"x{i}", "role": "egress"}
                        for i in range(1, 5)),
                      {"device": "core", "ifname": "t1", "role": "district_link", "peer": "hx"},
                      {"device": "core", "ifname": "t2", "role": "district_link",
                       "peer": "hy"}]}],
    "agents": [*({"id": f"s{n}-gw", "school": f"s{n}"} for n in range(1, 11)),
               {"id": "city-snmp", "school": "city-net", "role": "server"}],
}


def st(ts: int, mbps: float, server: str = HUB) -> Sample:
    """A speed test."""
    return Sample("speedtest", ts, {"server": server}, {"down_mbps": mbps})


def av(sid: str, room: str, ts: int, online: bool) -> Sample:
    """A projector / panel check."""
    return Sample("av", ts, {"device": f"{sid}-{room}", "classroom": room,
                             "device_type": "projector"}, {"online": online})


def up_checks(sid: str, room: str,
              offline: Collection[tuple[int, int]] = frozenset()) -> list[Sample]:
    """The 30 school-hour checks of a room, online except at the (day, hour)s in ``offline``."""
    return [av(sid, room, at(d, h), (d, h) not in offline) for d, h in CHECKS]


def scans(room: str, rssi: float) -> list[Sample]:
    """Ten school-hour Wi-Fi scans of a room."""
    return [Sample("wifi", at(d, h, 30), {"classroom": room, "ssid": "School",
                                         "bssid": "aa:bb:cc:00:00:01"}, {"rssi_dbm": rssi})
            for d in range(5) for h in (10, 15)]


def reach(role: str, up: bool) -> Sample:
    """A reach check at 17:50 Friday."""
    return Sample("reach", NOW - 10 * 60_000, {"target": role, "target_role": role,
                                               "method": "tcp"}, {"up": up})


FRIDAY = {(4, h) for h in (9, 10, 11, 14, 15, 16)}
WEDNESDAY = {(2, h) for h in (9, 10, 11, 14, 15, 16)}


def samples() -> dict[str, list[Sample]]:
    """What each school's gateway sends (see the table above)."""
    return {
        "s1": [*(st(t, 100.0) for t in TESTS), *up_checks("s1", "r1"), *up_checks("s1", "r2"),
               *scans("r1", -60.0), *scans("r2", -62.0),
               Sample("wifi", at(3, 21), {"classroom": "r1", "ssid": "School",
                                          "bssid": "aa:bb:cc:00:00:01"}, {"rssi_dbm": -90.0}),
               reach("internet", True), reach("district", True)],
        "s2": [*(st(t, 92.0) for t in TESTS), *up_checks("s2", "r1"),
               *up_checks("s2", "r2", FRIDAY),
               *(av("s2", "r2", at(d, 20), False) for d in range(5)),
               *scans("r1", -60.0), *scans("r2", -80.0), reach("internet", True)],
        "s3": [*(st(t, 9.2) for t in TESTS), *up_checks("s3", "r1"), *up_checks("s3", "r2"),
               reach("internet", False), reach("district", True)],
        "s4": [*(st(t, 27.6) for t in TESTS), *up_checks("s4", "r1"), *up_checks("s4", "r2"),
               reach("internet", True)],
        "s5": [*(st(t, 20.0) for t in TESTS), *up_checks("s5", "r1", set(CHECKS)),
               *scans("r1", -55.0), reach("internet", False), reach("district", False)],
        "s6": [*(st(t, 500.0 if t == at(2, 12, 30) else 8.0) for t in TESTS),
               st(NOW - 20 * 60_000, 8.0), *up_checks("s6", "r1"), *up_checks("s6", "r2")],
        "s7": [*(st(t, 80.0) for t in TESTS), *up_checks("s7", "r1", WEDNESDAY | {(3, 9), (3, 10)}),
               *up_checks("s7", "r2"), *scans("r1", -60.0), *scans("r2", -60.0),
               reach("internet", True)],
        "s8": [],
        "s9": [*(st(t, 3.68) for t in TESTS), st(NOW - 15 * 60_000, 3.68, OUTSIDE),
               *up_checks("s9", "r1")],
        "s10": [*(st(t, 2.0) for t in TESTS), reach("internet", False)],
        # the city node's own SNMP agent; s1's gateway never reports a core port
        "city-net": [*(Sample("netdev_if", NOW - 5 * 60_000, {"device": "core", "ifname": n},
                              {"speed_mbps": mbps, "up": True})
                       for n, mbps in (("x1", 10000), ("x2", 10000), ("x3", 10000),
                                       ("x4", 10000), ("t1", 10000), ("t2", 1000)))],
    }


# --- The hand computation -----------------------------------------------------------------
# Per school and rule: the value and the verdict (None: no_data; missing: the rule does not
# apply). p90 of 10 equal tests is that value; S6: sorted [8 x 10, 500], rank ceil(9.9) = 10.
ACCESS = {"s1": 100.0, "s2": 92.0, "s3": 9.2, "s4": 27.6, "s5": 20.0, "s6": 8.0, "s7": 80.0,
          "s8": None, "s9": 3.68, "s10": 2.0}
EXPECTED_SCHOOL: dict[tuple[str, str], dict[str, tuple[float, bool] | None]] = {
    # 接入带宽10M以上的中小学比例达到70%: >= 9.2 (10 x 0.92). S3 at exactly 9.2 meets; S6's one
    # 500 Mbit/s outlier does not lift its p90.
    ("cn-moe-2017", "access_10m"): {
        "s1": (100.0, True), "s2": (92.0, True), "s3": (9.2, True), "s4": (27.6, True),
        "s5": (20.0, True), "s6": (8.0, False), "s7": (80.0, True), "s8": None,
        "s9": (3.68, False), "s10": (2.0, False)},
    # 基本實現具備條件的學校互聯網全覆蓋: qualified schools only (not S5, S10); internet path only.
    # S3: internet down while its hub answers -> 0. S6: only a test to the hub -> no evidence.
    # S9: a test to a server outside the education network -> 1.
    ("cn-moe-2017", "internet_connected"): {
        "s1": (1.0, True), "s2": (1.0, True), "s3": (0.0, False), "s4": (1.0, True),
        "s6": None, "s7": (1.0, True), "s8": None, "s9": (1.0, True)},
    # 普通教室全部配备: S3 and S10 have unequipped rooms, S5's projector never worked.
    ("cn-moe-2017", "all_classrooms_school"): {
        "s1": (1.0, True), "s2": (1.0, True), "s3": (0.0, False), "s4": (1.0, True),
        "s5": (0.0, False), "s6": (1.0, True), "s7": (1.0, True), "s8": None,
        "s9": (1.0, True), "s10": (0.0, False)},
    # Broadband (>= 4M measured, 3.68 with the tolerance): urban and rural schools.
    ("cn-moe-13fyp", "broadband_schools"): {
        "s1": (100.0, True), "s2": (92.0, True), "s3": (9.2, True), "s4": (27.6, True),
        "s5": (20.0, True), "s6": (8.0, True), "s7": (80.0, True), "s8": None},
    ("cn-moe-13fyp", "broadband_teaching_points"): {"s9": (3.68, True)},  # S10 not qualified
    ("cn-moe-13fyp", "teaching_point"): {"s9": (3.68, True)},  # exactly 4 x 0.92
    # 城镇学校班均出口带宽不低于10M: access / classes >= 9.2. S2: 92/10 = 9.2 exactly.
    ("cn-moe-13fyp", "per_class_urban"): {
        "s1": (10.0, True), "s2": (9.2, True), "s3": (9.2 / 12, False), "s7": (10.0, True),
        "s8": None},
    # 有条件的农村学校 >= 5M per class (4.6): S4 27.6/6 = 4.6 exactly; S5 not qualified.
    ("cn-moe-13fyp", "per_class_rural"): {"s4": (4.6, True), "s6": (2.0, False)},
    # 东部和具备条件的城镇各类学校: qualified urban S1 S2 S3 S7 S8, and S5 (east).
    ("cn-moe-13fyp", "wireless_campus"): {
        "s1": (100.0, True), "s2": (50.0, False), "s3": None, "s5": (100.0, True),
        "s7": (100.0, True), "s8": None},
}
# 多媒體教室占普通教室比例達到80%, per ordinary classroom: uptime % (None: no data). A room
# without any device is 0 (S3 r3, r4; S10 r1); S2 r2 is 24/30 = 80 % exactly (its 20:00
# checks do not count); S7 r1 is 22/24 (Wednesday is a holiday).
ROOMS: dict[tuple[str, str], float | None] = {
    ("s1", "r1"): 100.0, ("s1", "r2"): 100.0, ("s2", "r1"): 100.0, ("s2", "r2"): 80.0,
    ("s3", "r1"): 100.0, ("s3", "r2"): 100.0, ("s3", "r3"): 0.0, ("s3", "r4"): 0.0,
    ("s4", "r1"): 100.0, ("s4", "r2"): 100.0, ("s5", "r1"): 0.0, ("s6", "r1"): 100.0,
    ("s6", "r2"): 100.0, ("s7", "r1"): 100 * 22 / 24, ("s7", "r2"): 100.0,
    ("s8", "r1"): None, ("s8", "r2"): None, ("s9", "r1"): 100.0, ("s10", "r1"): 0.0}
# District shares: (counted with data, met, no data, share %, reached).
EXPECTED_SHARE = {
    # 6 of 9 schools with a test: 66.7 % < 70 %.
    ("cn-moe-2017", "access_10m"): (9, 6, 1, 100 * 6 / 9, False),
    ("cn-moe-2017", "internet_connected"): (6, 5, 2, 100 * 5 / 6, False),
    # 13 of 17 classrooms with data: 76.5 % < 80 % (the old reading, dropping the three
    # unequipped rooms, said 13 / 14 = 92.9 %, met).
    ("cn-moe-2017", "multimedia_ratio"): (17, 13, 2, 100 * 13 / 17, False),
    ("cn-moe-2017", "all_classrooms_school"): (9, 6, 1, 100 * 6 / 9, True),  # >= 60 %
    ("cn-moe-13fyp", "broadband_schools"): (7, 7, 1, 100.0, True),
    ("cn-moe-13fyp", "broadband_teaching_points"): (1, 1, 0, 100.0, True),
    ("cn-moe-13fyp", "teaching_point"): (1, 1, 0, 100.0, True),
    ("cn-moe-13fyp", "per_class_urban"): (4, 3, 1, 75.0, False),
    ("cn-moe-13fyp", "per_class_rural"): (2, 1, 0, 50.0, False),
    ("cn-moe-13fyp", "wireless_campus"): (4, 3, 2, 75.0, False),
}
# The report's per-school multimedia row: the share of its rooms with data meeting 80 %,
# held against the rule's share target (80 %).
MULTIMEDIA_ROW = {"s1": 100.0, "s2": 100.0, "s3": 50.0, "s4": 100.0, "s5": 0.0, "s6": 100.0,
                  "s7": 100.0, "s8": None, "s9": 100.0, "s10": 0.0}
# Schools per tier of the report (p90 of the period's tests, tolerance 8 %).
TIERS = {"none": 1, "0": 1, "4": 2, "10": 4, "100": 2, "1000": 0}
POLICIES = ["cn-moe-2017", "cn-moe-13fyp", "guangzhou-2017", "schoolmon-operations"]
# Guangzhou over the same week, and our operational rules. access_100m: >= 92 (100 x 0.92),
# public and private; access_1000m: public, per school (基本: no share); the city node: egress
# 4 x 10G = 40G (met), links to hx 10G and hy 1G: the slowest, 1000 (missed). Every agent was
# received at 18:00 (fresh) except silent S8's; the education path within 30 min: S1 and S3
# (hub up at 17:50), S6 (its 17:40 test to the hub), S5 (hub down).
EXPECTED_MORE: dict[tuple[str, str], dict[str, tuple[float, bool] | None]] = {
    ("guangzhou-2017", "access_100m"): {
        sid: None if v is None else (v, v >= 92) for sid, v in ACCESS.items()},
    ("guangzhou-2017", "access_1000m"): {
        sid: None if v is None else (v, False) for sid, v in ACCESS.items()},
    ("guangzhou-2017", "city_egress_40g"): {"city-net": (40000.0, True)},
    ("guangzhou-2017", "district_link_10g"): {"city-net": (1000.0, False)},
    ("guangzhou-2017", "wireless_campus"): {  # 推进: every school, no share target
        "s1": (100.0, True), "s2": (50.0, False), "s3": None, "s4": None, "s5": (100.0, True),
        "s6": None, "s7": (100.0, True), "s8": None, "s9": None, "s10": None},
    ("schoolmon-operations", "agents_reporting"): {
        **{f"s{n}": (100.0, True) for n in range(1, 11)}, "s8": (0.0, False)},
    ("schoolmon-operations", "edu_network_up"): {
        "s1": (1.0, True), "s2": None, "s3": (1.0, True), "s4": None, "s5": (0.0, False),
        "s6": (1.0, True), "s7": None, "s8": None, "s9": None, "s10": None},
}
EXPECTED_MORE_SHARE = {
    ("guangzhou-2017", "access_100m"): (9, 2, 1, 100 * 2 / 9, False),
    ("guangzhou-2017", "banbantong"): (17, 13, 2, 100 * 13 / 17, False),  # target 100 %
    ("schoolmon-operations", "agents_reporting"): (10, 9, 0, 90.0, False),
    ("schoolmon-operations", "edu_network_up"): (4, 3, 6, 75.0, False),
}


@pytest.fixture
def district(services: Services, influx_db: str, topic_prefix: str,
             tmp_path: Path) -> Iterator[tuple[Collector, RulesEngine, Path]]:
    """collector.yaml + inventory.yaml on disk, and the collector they describe, running."""
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(INVENTORY), encoding="utf-8")
    raw = {
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": topic_prefix,
                 "username": None, "client_id": f"hand-{topic_prefix[:10]}",
                 "session_expiry": "60s"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": influx_db},
        # A fixed calendar week (computed by hand): no bound on sample age.
        "write": {"flush_interval": "100ms", "max_sample_age": "0s"},
        "inventory": "inventory.yaml", "policies": POLICIES,
        "rules": {"window": "7d", "recent": "30m", "percentile": "p90",
                  "rate_tolerance_pct": 8, "uptime_threshold_pct": 80, "wifi_rssi_dbm": -67,
                  "wifi_good_pct": 90, "internet_speedtest_servers": [OUTSIDE],
                  "default_timetable": {k: v for k, v in HOLIDAY.items() if k != "holidays"}},
    }
    config_path = tmp_path / "collector.yaml"
    config_path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    config = CollectorConfig.model_validate(raw)
    engine = build_rules_engine(config.rules, config.inventory, config.policies, config_path,
                                clock=lambda: NOW)
    assert engine is not None
    coll = Collector(config, build_writer(config), observers=[engine.observe],
                     status_observers=[engine.observe_status])
    coll.start()
    assert coll.connected.wait(10), "collector did not connect"
    yield coll, engine, config_path
    coll.stop()


def send_week(port: int, prefix: str, engine: RulesEngine) -> None:
    """Publish every school's week; return when the engine has observed all of it."""
    topics = Topics(prefix)
    first = AgentIdentity(DISTRICT, "s1", "s1-gw")
    # A retained status reaches the collector once its subscriptions are in place.
    publish(port, [(topics.status(first), b"online", True)])
    wait_until(lambda: (s := engine.school_status("s1")) is not None
               and s.agents[0].status == "online", 10, "the collector's subscription")
    week = samples()
    agent = {sid: "city-snmp" if sid == "city-net" else f"{sid}-gw" for sid in week}
    messages = [(topics.data(AgentIdentity(DISTRICT, sid, agent[sid])),
                 encode_envelope(Envelope(DISTRICT, sid, agent[sid], 1, NOW, batch)), False)
                for sid, batch in week.items() if batch]
    publish(port, messages)
    total = sum(len(b) for b in week.values())
    wait_until(lambda: engine.observed_samples == total, 20, "every sample observed")


def report(config_path: Path, policy: str, out: Path) -> tuple[list[dict[str, str]], str]:
    """``schoolmon report`` as a process: its CSV rows and its HTML."""
    result = subprocess.run(
        schoolmon_cmd("report", "-c", str(config_path), "--policy", policy, "--from",
                      "2026-11-23", "--to", "2026-11-27", "--out", str(out), "--lang", "en"),
        capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(
        (out / "report.csv").read_text(encoding="utf-8-sig"))))
    return rows, (out / "report.html").read_text(encoding="utf-8")


def close(a: object, b: float | None) -> bool:
    """Equal figures (None: no data), to the float rounding of a quotient."""
    return (a is None and b is None) or (a is not None and b is not None
                                       and a == pytest.approx(b, abs=1e-9))


Points = dict[tuple[str, str, str, str, str], dict[str, object]]


def read_points(services: Services, db: str) -> Points:
    """Every compliance point, by (policy, rule, scope, school, classroom)."""
    rows = influx_rows(services.influx_url, db, "SELECT * FROM compliance GROUP BY *")
    return {(str(p["policy"]), str(p["rule"]), str(p["scope"]), str(p.get("school") or ""),
             str(p.get("classroom") or "")): p for p in rows}


def check_schools(by_key: Points,
                  expected: dict[tuple[str, str], dict[str, tuple[float, bool] | None]]) -> None:
    """Each school-scope point as expected, and no other school (or node) checked."""
    for (policy, rule), schools in expected.items():
        got = {k[3]: p for k, p in by_key.items() if k[:3] == (policy, rule, "school")}
        assert set(got) == set(schools), (rule, sorted(got))
        for sid, want in schools.items():
            p = got[sid]
            if want is None:
                assert (p["state"], p["met"], p.get("value")) == ("no_data", False, None), p
            else:
                assert p["state"] == "ok" and close(p["value"], want[0]), (rule, sid, p)
                assert p["met"] is want[1], (rule, sid, p)


def check_shares(by_key: Points,
                 expected: dict[tuple[str, str], tuple[int, int, int, float, bool]]) -> None:
    """Each district share: counts, share and verdict."""
    for (policy, rule), (counted, met, no_data, share, reached) in expected.items():
        p = by_key[(policy, rule, "district_share", "", "")]
        unit = "classrooms" if rule in ("multimedia_ratio", "banbantong") else "schools"
        assert (p[unit], p[f"{unit}_met"], p[f"{unit}_no_data"]) == (counted, met, no_data), rule
        assert close(p["value"], share) and p["met"] is reached, (rule, p)


def test_every_verdict_as_computed_by_hand(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path,
        district: tuple[Collector, RulesEngine, Path]) -> None:
    """Compliance points, CSV rows and HTML shares equal the tables above."""
    started = time.monotonic()
    coll, engine, config_path = district
    send_week(services.mqtt_port, topic_prefix, engine)
    assert coll.write_points(engine.pass_lines(NOW))

    by_key = read_points(services, influx_db)
    check_schools(by_key, EXPECTED_SCHOOL)
    rooms = {(k[3], k[4]): p for k, p in by_key.items()
             if k[:3] == ("cn-moe-2017", "multimedia_ratio", "classroom")}
    assert set(rooms) == set(ROOMS)
    for room, value in ROOMS.items():
        assert close(rooms[room].get("value"), value), (room, rooms[room])
        assert rooms[room]["met"] is (value is not None and value >= 80), room
    check_shares(by_key, EXPECTED_SHARE)

    # The report, as the command writes it.
    rows, html = report(config_path, "cn-moe-2017", tmp_path / "moe")
    csv_rows = {(r["school"], r["rule"]): r for r in rows}
    for (policy, rule), schools in EXPECTED_SCHOOL.items():
        if policy != "cn-moe-2017":
            continue
        for sid, expected in schools.items():
            r = csv_rows.pop((sid, rule))
            if expected is None:
                assert (r["value"], r["met"], r["state"]) == ("", "false", "no_data"), r
            else:
                assert float(r["value"]) == pytest.approx(expected[0], abs=1e-4), r
                assert r["met"] == ("true" if expected[1] else "false"), r
    for sid, row_share in MULTIMEDIA_ROW.items():
        r = csv_rows.pop((sid, "multimedia_ratio"))
        assert (r["value"], r["target"]) == (
            "" if row_share is None else repr(row_share), "80.0"), r
        assert r["met"] == ("true" if row_share is not None and row_share >= 80 else "false"), r
    assert csv_rows == {}  # no row the hand computation does not know
    for (policy, rule), (counted, met, _none, share, _r) in EXPECTED_SHARE.items():
        if policy == "cn-moe-2017":
            assert (f'data-rule="{rule}" data-share="{share:.1f}" data-met="{met}" '
                    f'data-counted="{counted}"') in html, rule
    for tier, n in TIERS.items():
        assert f'data-tier="{tier}">{n}<' in html, tier
    # Each target's deadline, the document's status and the whole source sentence.
    assert {(r["deadline"], r["status"]) for r in rows} == {("2017", "work_points")}
    assert '<span id="status" data-status="work_points">annual work points</span>' in html
    assert 'data-deadline="2017"' in html and "多媒體教室占普通教室比例達到80%" in html
    assert "basically (no exact share stated)" in html  # 基本實現...互聯網全覆蓋

    rows, html = report(config_path, "cn-moe-13fyp", tmp_path / "fyp")
    csv_rows = {(r["school"], r["rule"]): r for r in rows}
    expected_rows = {(sid, rule): v for (policy, rule), schools in EXPECTED_SCHOOL.items()
                     if policy == "cn-moe-13fyp" for sid, v in schools.items()}
    assert set(csv_rows) == set(expected_rows)
    for key, expected in expected_rows.items():
        r = csv_rows[key]
        assert r["met"] == ("true" if expected is not None and expected[1] else "false"), r
        assert r["value"] == "" if expected is None else float(r["value"]) == pytest.approx(
            expected[0], abs=1e-4), r
    assert {(r["deadline"], r["status"]) for r in rows} == {("2020", "draft_for_comment")}
    assert "draft for comment (not an issued document)" in html
    for (policy, rule), (counted, met, _none, share, _r) in EXPECTED_SHARE.items():
        if policy == "cn-moe-13fyp":
            assert (f'data-rule="{rule}" data-share="{share:.1f}" data-met="{met}" '
                    f'data-counted="{counted}"') in html, rule
    print(f"hand-computed district: {time.monotonic() - started:.1f} s")


def test_network_node_and_operational_rules_by_hand(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path,
        district: tuple[Collector, RulesEngine, Path]) -> None:
    """Guangzhou's city-network targets on the city node's own ports, the education path and
    agent freshness (ours), as computed by hand; the report lists the node's rows."""
    coll, engine, config_path = district
    send_week(services.mqtt_port, topic_prefix, engine)
    assert coll.write_points(engine.pass_lines(NOW))
    by_key = read_points(services, influx_db)
    check_schools(by_key, EXPECTED_MORE)
    check_shares(by_key, EXPECTED_MORE_SHARE)
    # A network node is not a school: no school_status point for it.
    status = influx_rows(services.influx_url, influx_db,
                         "SELECT last(devices_up) FROM school_status GROUP BY school")
    assert {str(r["school"]) for r in status} == {f"s{n}" for n in range(1, 11)}

    rows, html = report(config_path, "guangzhou-2017", tmp_path / "gz")
    node = {r["rule"]: (r["value"], r["met"]) for r in rows if r["school"] == "city-net"}
    assert node == {"city_egress_40g": ("40000.0", "true"),
                    "district_link_10g": ("1000.0", "false")}
    assert 'id="school-count">10<' in html  # the node is not counted as a school
    rows, html = report(config_path, "schoolmon-operations", tmp_path / "ops")
    assert {(r["status"], r["deadline"]) for r in rows} == {("operational", "")}
    assert "schoolmon&#x27;s own operational rule (no policy document)" in html
