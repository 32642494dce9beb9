"""Wireless: per-classroom RSSI and coverage, access points online, clients."""

from __future__ import annotations

from collector.measurements import COMPLIANCE
from dashboards.influxql import (
    CLASSROOM,
    CLASSROOM_VAR,
    DISTRICT_VAR,
    INTERVAL,
    RSSI_FAIR_DBM,
    RSSI_GOOD_DBM,
    SCHOOL,
    SCHOOL_VAR,
    TIME,
    WIFI_SCAN,
    dashboard_link,
    where,
)
from dashboards.model import (
    MET,
    UP_DOWN,
    Bars,
    Calc,
    Dashboard,
    JoinByField,
    Organize,
    Panel,
    Row,
    Series,
    Stat,
    Step,
    Table,
    Target,
    Timeline,
)

ROOMS = where(SCHOOL, CLASSROOM, TIME)
# The best access point of the school SSID in each scan: what a device in the room would use.
BEST_PER_SCAN = (f'SELECT max("rssi_dbm") AS "best" FROM "wifi" WHERE {ROOMS} '
                 f'GROUP BY time({WIFI_SCAN}), "classroom"')
RSSI_STEPS = (Step("red"), Step("orange", RSSI_FAIR_DBM), Step("green", RSSI_GOOD_DBM))
APS = where(SCHOOL, TIME)
WIRELESS_RULES = '"rule" =~ /wireless|wifi/'


def dashboard() -> Dashboard:
    """Wireless coverage of classrooms and the school's access points."""
    back = dashboard_link("schoolmon-school", "school", "School", "district", "school")
    return Dashboard(
        uid="schoolmon-wireless", title="schoolmon / Wireless",
        description="Wi-Fi signal and coverage per classroom; access points and clients.",
        variables=(DISTRICT_VAR, SCHOOL_VAR, CLASSROOM_VAR),
        panels=(
            Row("Classrooms"),
            Panel("Best signal per classroom", Series(threshold_lines=True), (Target("A", (
                f'SELECT max("rssi_dbm") FROM "wifi" WHERE {ROOMS} '
                f'GROUP BY {INTERVAL}, "classroom" fill(none)'), alias="$tag_classroom"),),
                  w=14, h=9, unit="dBm", steps=RSSI_STEPS, links=(back,),
                  description=f"Strongest school-SSID access point heard in the room; "
                              f"dashed: {RSSI_GOOD_DBM} dBm (good for voice and video) and "
                              f"{RSSI_FAIR_DBM} dBm (below: poor)."),
            Panel(f"Coverage: scans with best AP >= {RSSI_GOOD_DBM} dBm", Bars(), (
                Target("A", f'SELECT count("best") AS "good" FROM ({BEST_PER_SCAN}) '
                            f'WHERE "best" >= {RSSI_GOOD_DBM} GROUP BY "classroom"',
                       fmt="table"),
                Target("B", f'SELECT count("best") AS "scans" FROM ({BEST_PER_SCAN}) '
                            'GROUP BY "classroom"', fmt="table")),
                  w=10, h=9, unit="percent", min=0, max=100,
                  steps=(Step("red"), Step("orange", 75), Step("green", 90)),
                  transformations=(JoinByField("classroom"), Calc("share", "good", "/", "scans"),
                                   Calc("coverage", "share", "*", "100"),
                                   Organize(("Time", "Time 1", "Time 2", "good", "scans",
                                             "share"))),
                  description="A classroom counts as covered at >= 90 % of its school-hour "
                              "scans (the wireless_campus rule)."),
            Panel("Signal per access point", Series(), (Target("A", (
                f'SELECT mean("rssi_dbm") FROM "wifi" WHERE {ROOMS} '
                f'GROUP BY {INTERVAL}, "classroom", "bssid", "band" fill(none)'),
                alias="$tag_classroom $tag_bssid $tag_band"),), w=14, h=8, unit="dBm"),
            Panel("Wireless targets", Table(sort_by="rule"), (Target("A", (
                'SELECT last("value") AS "value", last("target") AS "target", '
                f'last("met") AS "met" FROM "{COMPLIANCE.name}" '
                f'WHERE {where(SCHOOL, WIRELESS_RULES, TIME)} GROUP BY "rule", "policy"'),
                fmt="table"),), w=10, h=8, mappings=MET),
            Row("Access points"),
            Panel("Access points online", Stat(), (Target("A", (
                'SELECT count("online") AS "online" FROM (SELECT last("online") AS "online" '
                f'FROM "ap" WHERE {APS} GROUP BY "ap") WHERE "online" = true')),),
                  w=4, h=4, no_value="0"),
            Panel("Access points", Stat(), (Target("A", (
                'SELECT count("online") AS "access points" FROM (SELECT last("online") AS '
                f'"online" FROM "ap" WHERE {APS} GROUP BY "ap")')),), w=4, h=4, no_value="0"),
            Panel("Clients now", Stat(), (Target("A", (
                'SELECT sum("clients") AS "clients" FROM (SELECT last("clients") AS "clients" '
                f'FROM "ap" WHERE {APS} GROUP BY "ap")')),), w=4, h=4, no_value="0"),
            Panel("Access point state", Timeline(), (Target("A", (
                f'SELECT last("online") FROM "ap" WHERE {APS} '
                f'GROUP BY {INTERVAL}, "ap" fill(none)'), alias="$tag_ap"),),
                  w=12, h=8, mappings=UP_DOWN),
            Panel("Clients per access point", Series(bars=True), (Target("A", (
                f'SELECT mean("clients") FROM "ap" WHERE {APS} '
                f'GROUP BY {INTERVAL}, "ap" fill(none)'), alias="$tag_ap"),), w=24, h=8,
                  unit="none", min=0),
        ),
    )
