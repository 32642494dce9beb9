"""One school: speed tests against targets and contract, WAN, reachability, devices."""

from __future__ import annotations

from collector.measurements import COMPLIANCE, SCHOOL_INFO, SCHOOL_STATUS
from common.vocab import WAN as WAN_ROLE
from dashboards.influxql import (
    DISTRICT_VAR,
    INTERVAL,
    SCHOOL,
    SCHOOL_VAR,
    TIER_FLOORS,
    TIME,
    dashboard_link,
    where,
)
from dashboards.model import (
    MET,
    UP_DOWN,
    ColumnLink,
    ConfigFromQuery,
    Dashboard,
    Link,
    Panel,
    Row,
    Series,
    Stat,
    Step,
    Table,
    Target,
    Timeline,
)

CLASSROOM_LINK = Link("Classroom ${__value.raw}",
                      "/d/schoolmon-classroom/classroom?${district:queryparam}"
                      "&${school:queryparam}&var-classroom=${__value.raw}&${__url_time_range}")
BY_TIME = f"GROUP BY {INTERVAL} fill(none)"
WAN = f"\"role\" = '{WAN_ROLE}'"
ACCESS_RULES = '"rule" =~ /^access_/'



def dashboard() -> Dashboard:
    """The school detail."""
    links = (dashboard_link("schoolmon-classroom", "classroom", "Classroom equipment",
                            "district", "school"),
             dashboard_link("schoolmon-wireless", "wireless", "Wireless", "district", "school"))
    return Dashboard(
        uid="schoolmon-school", title="schoolmon / School",
        description="Speed tests against targets and contract, WAN, reachability, devices.",
        variables=(DISTRICT_VAR, SCHOOL_VAR),
        panels=(
            Row("Access bandwidth"),
            Panel("Speed tests against target and contract", Series(threshold_lines=True), (
                Target("A", 'SELECT mean("down_mbps") AS "download", mean("up_mbps") AS '
                            f'"upload" FROM "speedtest" WHERE {where(SCHOOL, TIME)} {BY_TIME}'),
                # All-time last: the contract comes from the inventory, written at startup.
                Target("B", 'SELECT last("contracted_mbps") AS "contract", '
                            'last("contracted_mbps") * 0.8 AS "contract_80" '
                            f'FROM "{SCHOOL_INFO.name}" WHERE {SCHOOL}', fmt="table"),
                Target("C", f'SELECT max("target") AS "target" FROM "{COMPLIANCE.name}" '
                            f"WHERE {where(SCHOOL, ACCESS_RULES, TIME)}",
                       fmt="table")),
                  w=16, h=9, unit="Mbits", min=0, links=links,
                  # Placeholders: configFromData sets steps 1-3 from queries B and C.
                  steps=(Step("transparent"), Step("orange", 0), Step("green", 0),
                         Step("purple", 0)),
                  transformations=(ConfigFromQuery("B", ("contract_80", "contract")),
                                   ConfigFromQuery("C", ("target",), first=3)),
                  description="Download and upload of each test; dashed: 80 % of the "
                              "contracted rate, the contract, and the highest access target "
                              "that applies to this school."),
            # The rules' figure (school_status): nearest-rank p90 of the rules window's tests;
            # InfluxQL's percentile() rounds the rank and would disagree with the verdicts.
            Panel("Access (rules: p90 of the window's tests)", Stat(), (Target("A", (
                f'SELECT last("access_mbps") AS "access" FROM "{SCHOOL_STATUS.name}" '
                f"WHERE {where(SCHOOL, TIME)}")),), w=4, h=4, unit="Mbits",
                  steps=(Step("red"), *(Step(c, t) for c, t in zip(
                      ("orange", "yellow", "green", "blue"), TIER_FLOORS, strict=True)))),
            Panel("Contracted", Stat(), (Target("A", (
                f'SELECT last("contracted_mbps") AS "contract" FROM "{SCHOOL_INFO.name}" '
                f"WHERE {SCHOOL}")),), w=4, h=4, unit="Mbits"),
            Panel("Targets of this school", Table(sort_by="rule"), (Target("A", (
                'SELECT last("value") AS "value", last("target") AS "target", '
                f'last("met") AS "met", last("state") AS "state" FROM "{COMPLIANCE.name}" '
                f'WHERE {where(SCHOOL, TIME)} GROUP BY "rule", "policy", "scope"'),
                fmt="table"),), w=8, h=5, mappings=MET),
            Row("WAN"),
            Panel("WAN traffic", Series(), (Target("A", (
                'SELECT mean("rx_bps") AS "in", mean("tx_bps") AS "out" FROM "iface" '
                f"WHERE {where(SCHOOL, WAN, TIME)} "
                f'GROUP BY {INTERVAL}, "agent", "iface" fill(none)'),
                alias="$tag_iface $col"),), w=12, h=8, unit="bps"),
            Panel("WAN utilisation (% of link speed)", Series(), (Target("A", (
                'SELECT mean("rx_bps") / mean("link_mbps") / 10000 AS "in", '
                'mean("tx_bps") / mean("link_mbps") / 10000 AS "out" FROM "iface" '
                f"WHERE {where(SCHOOL, WAN, TIME)} "
                f'GROUP BY {INTERVAL}, "agent", "iface" fill(none)'),
                alias="$tag_iface $col"),), w=12, h=8, unit="percent", min=0,
                  steps=(Step("green"), Step("orange", 70), Step("red", 90))),
            Row("Reachability"),
            Panel("Reachability", Timeline(), (Target("A", (
                f'SELECT last("up") FROM "reach" WHERE {where(SCHOOL, TIME)} '
                f'GROUP BY {INTERVAL}, "target" fill(none)'), alias="$tag_target"),),
                  w=24, h=5, mappings=UP_DOWN),
            Panel("Latency", Series(), (Target("A", (
                f'SELECT mean("rtt_ms") FROM "reach" WHERE {where(SCHOOL, TIME)} '
                f'GROUP BY {INTERVAL}, "target" fill(none)'), alias="$tag_target"),),
                  w=12, h=8, unit="ms"),
            Panel("Packet loss", Series(), (Target("A", (
                f'SELECT mean("loss_pct") FROM "reach" WHERE {where(SCHOOL, TIME)} '
                f'GROUP BY {INTERVAL}, "target" fill(none)'), alias="$tag_target"),),
                  w=12, h=8, unit="percent", min=0),
            Row("Devices"),
            Panel("Network devices", Table(sort_by="device"), (Target("A", (
                'SELECT last("up") AS "up", last("uptime_s") AS "uptime" FROM "netdev" '
                f'WHERE {where(SCHOOL, TIME)} GROUP BY "device", "source"'), fmt="table"),),
                  w=8, h=8, mappings=UP_DOWN),
            Panel("Switch and controller ports", Series(), (Target("A", (
                'SELECT mean("in_bps") AS "in", mean("out_bps") AS "out" FROM "netdev_if" '
                f'WHERE {where(SCHOOL, TIME)} GROUP BY {INTERVAL}, "device", "ifname" '
                'fill(none)'), alias="$tag_device $tag_ifname $col"),), w=16, h=8,
                  unit="bps"),
            Panel("Classroom equipment", Table(sort_by="classroom"), (Target("A", (
                'SELECT last("online") AS "online", last("power") AS "power", '
                'last("lamp_hours") AS "lamp_hours" FROM "av" '
                f'WHERE {where(SCHOOL, TIME)} GROUP BY "classroom", "device", "device_type"'),
                fmt="table"),), w=12, h=8, mappings=UP_DOWN,
                  column_links=(ColumnLink("classroom", CLASSROOM_LINK),)),
            Panel("Access points", Table(sort_by="ap"), (Target("A", (
                'SELECT last("online") AS "online", last("clients") AS "clients" FROM "ap" '
                f'WHERE {where(SCHOOL, TIME)} GROUP BY "ap", "controller"'), fmt="table"),),
                  w=12, h=8, mappings=UP_DOWN),
            Panel("Agent hosts", Series(), (Target("A", (
                'SELECT mean("cpu_pct") AS "cpu", mean("mem_pct") AS "memory", '
                f'mean("disk_pct") AS "disk" FROM "host" WHERE {where(SCHOOL, TIME)} '
                f'GROUP BY {INTERVAL}, "agent" fill(none)'), alias="$tag_agent $col"),),
                  w=24, h=7, unit="percent", min=0, max=100),
        ),
    )
