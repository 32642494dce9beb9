"""District overview: access tiers, share of schools meeting each target, misses, map, agents."""

from __future__ import annotations

from collector.measurements import AGENT_STATUS, COMPLIANCE, SCHOOL_INFO, SCHOOL_STATUS
from common.figures import TIERS_MBPS
from dashboards.influxql import (
    DISTRICT,
    DISTRICT_VAR,
    SCOPE_DISTRICT,
    SCOPE_SCHOOL,
    TIME,
    school_link,
    where,
)
from dashboards.model import (
    MET,
    UP_DOWN,
    Bars,
    Calc,
    ColumnLink,
    Dashboard,
    Dashed,
    JoinByField,
    Map,
    Organize,
    Panel,
    Row,
    Series,
    Stat,
    Step,
    Table,
    Target,
)

# Access bandwidth of a school = the rules engine's own figure, written every pass into
# school_status: the nearest-rank percentile (rules.percentile, p90) of the speed tests of the
# rules window, and its tier with the rate tolerance. InfluxQL's percentile() rounds the rank
# instead, so computing it here would put some schools in another tier than the rules do.
ACCESS = (f'SELECT last("access_mbps") AS "access", last("tier_mbps") AS "tier" '
          f'FROM "{SCHOOL_STATUS.name}" WHERE {where(DISTRICT, TIME)} GROUP BY "school"')
TIER_STEPS = (Step("red"), *(Step(c, t) for c, t in zip(
    ("orange", "yellow", "green", "blue"), TIERS_MBPS, strict=True)))
# The last result per school and rule: a school that missed yesterday and meets today is met.
LAST_MET = (f'SELECT last("met") AS "met" FROM "{COMPLIANCE.name}" '
            f'WHERE {where(DISTRICT, SCOPE_SCHOOL, TIME)} GROUP BY "rule", "school"')


def _tier(ref: str, label: str, tier: int) -> Target:
    return Target(ref, f'SELECT count("access") AS "{label}" FROM ({ACCESS}) '
                       f'WHERE "tier" = {tier}')


def _tiers() -> tuple[Target, ...]:
    refs = "ABCDE"
    tiers = [(f"{t}M", t) for t in reversed(TIERS_MBPS)] + [("below 4M", 0)]
    return tuple(_tier(ref, label, t) for ref, (label, t) in zip(refs, tiers, strict=True))


def dashboard() -> Dashboard:
    """The district overview."""
    school_col = ColumnLink("school", school_link())
    return Dashboard(
        uid="schoolmon-district", title="schoolmon / District overview",
        description="Access tiers, policy targets, schools missing them, map, agents offline.",
        variables=(DISTRICT_VAR,),
        panels=(
            Row("Access bandwidth (the rules' figure: p90 of the rules window's speed tests)"),
            Panel("Schools per access tier", Bars(), _tiers(), w=10, h=8, unit="none",
                  description="Schools by the tier the rules engine gives them (school_status, "
                              "latest in the time range): nearest-rank p90 of the speed tests "
                              "of rules.window, in tier T at >= T x (1 - rate tolerance). "
                              "Policy: 10M for 70 % of schools, 100M for all, 1000M for public "
                              "schools."),
            Panel("Schools reporting", Stat(), (Target("A", (
                f'SELECT count("n") AS "schools" FROM (SELECT last("rss_mb") AS "n" FROM "agent"'
                f' WHERE {where(DISTRICT, TIME)} GROUP BY "school")')),), w=4, h=4,
                  no_value="0"),
            Panel("Schools with a speed test", Stat(), (Target("A", (
                f'SELECT count("access") AS "schools" FROM ({ACCESS})')),), w=4, h=4,
                  no_value="0"),
            Panel("Agents offline (last will)", Stat(color_mode="background"), (Target("A", (
                'SELECT count("online") AS "offline" FROM (SELECT last("online") AS "online" '
                f'FROM "{AGENT_STATUS.name}" WHERE {DISTRICT} GROUP BY "agent") '
                'WHERE "online" = false')),), w=6, h=4, no_value="0",
                  steps=(Step("green"), Step("red", 1)),
                  description="Agents whose last MQTT status is offline (their last will: "
                              "the broker lost them), whatever the time range."),
            Panel("Access per school", Table(sort_by="access_mbps"), (
                Target("A", f'SELECT last("access_mbps") AS "access_mbps", '
                            f'last("per_class_mbps") AS "Mbps per class", '
                            f'last("isp_pct") AS "% of contract" FROM "{SCHOOL_STATUS.name}" '
                            f'WHERE {where(DISTRICT, TIME)} GROUP BY "school"', fmt="table"),
                Target("B", f'SELECT max("down_mbps") AS "peak_mbps", '
                            f'count("down_mbps") AS "tests" FROM "speedtest" '
                            f'WHERE {where(DISTRICT, TIME)} GROUP BY "school"', fmt="table")),
                  w=14, h=8, unit="none", column_links=(school_col,),
                  transformations=(JoinByField("school"), Organize(("Time", "Time 1", "Time 2"))),
                  description="The rules' access figure (school_status) against the contracted "
                              "rate (flag below 80 %) and per class (urban >= 10, rural >= 5 "
                              "Mbps), computed by the rules in exact decimal; peak and count "
                              "of the tests in the time range."),
            Row("Policy targets"),
            Panel("Share of schools meeting each target", Bars(), (
                Target("A", f'SELECT count("met") AS "met" FROM ({LAST_MET}) '
                            f'WHERE "met" = true GROUP BY "rule"', fmt="table"),
                Target("B", f'SELECT count("met") AS "schools" FROM ({LAST_MET}) '
                            f'GROUP BY "rule"', fmt="table")),
                  w=10, h=9, unit="percent", min=0, max=100,
                  steps=(Step("red"), Step("orange", 60), Step("yellow", 70),
                         Step("green", 100)),
                  transformations=(JoinByField("rule"), Calc("share", "met", "/", "schools"),
                                   Calc("share %", "share", "*", "100"),
                                   Organize(("Time", "Time 1", "Time 2", "met", "schools",
                                             "share"))),
                  description="Per rule: schools whose latest result is met / schools "
                              "evaluated. Colour bands at the policy shares 60 % and 70 %."),
            Panel("District shares against their targets", Series(), (
                Target("A", f'SELECT last("value") AS "share" FROM "{COMPLIANCE.name}" '
                            f"WHERE {where(DISTRICT, SCOPE_DISTRICT, TIME)} "
                            f'GROUP BY time($__interval), "rule" fill(previous)',
                       alias="$tag_rule"),
                Target("B", f'SELECT last("target") AS "target" FROM "{COMPLIANCE.name}" '
                            f"WHERE {where(DISTRICT, SCOPE_DISTRICT, TIME)} "
                            f'GROUP BY time($__interval), "rule" fill(previous)',
                       alias="$tag_rule target")),
                  w=14, h=9, unit="percent", dashed=(Dashed(".* target$"),),
                  description="District roll-ups written by the rules engine (scope "
                              "district_share): the share over time, its target dashed."),
            Panel("Schools missing targets", Table(sort_by="school"), (Target("A", (
                'SELECT "value", "target", "state" FROM (SELECT last("met") AS "met", '
                'last("value") AS "value", last("target") AS "target", '
                f'last("state") AS "state" FROM "{COMPLIANCE.name}" '
                f"WHERE {where(DISTRICT, SCOPE_SCHOOL, TIME)} "
                'GROUP BY "school", "rule", "policy") WHERE "met" = false '
                'GROUP BY "school", "rule", "policy"'), fmt="table"),),
                  w=24, h=9, column_links=(school_col,), mappings=MET,
                  description="Each school and rule whose latest result is not met."),
            Row("Map and agents"),
            Panel("Schools", Map(color_field="tier"), (
                Target("A", 'SELECT last("lat") AS "lat", last("lon") AS "lon", '
                            f'last("name") AS "name" FROM "{SCHOOL_INFO.name}" '
                            f'WHERE {DISTRICT} GROUP BY "school"', fmt="table"),
                Target("B", ACCESS, fmt="table")),
                  w=12, h=12, unit="none", steps=TIER_STEPS,
                  transformations=(JoinByField("school"),),
                  description="Schools with a location in the inventory (school_info, written "
                              "by the collector), coloured by access tier."),
            Panel("Agents offline", Table(sort_by="Time"), (Target("A", (
                'SELECT "online", "school" FROM (SELECT last("online") AS "online" '
                f'FROM "{AGENT_STATUS.name}" WHERE {DISTRICT} GROUP BY "agent", "school") '
                'WHERE "online" = false GROUP BY "agent"'), fmt="table"),),
                  w=12, h=6, mappings=UP_DOWN, column_links=(school_col,),
                  description="Time: when the broker published the agent's last will."),
            Panel("Agents by last report (stale first)", Table(sort_by="Time"), (Target("A", (
                'SELECT last("rss_mb") AS "rss_mb", last("spool_depth") AS "spool_depth" '
                f'FROM "agent" WHERE {where(DISTRICT, TIME)} GROUP BY "school", "agent"'),
                fmt="table"),), w=12, h=6, column_links=(school_col,)),
        ),
    )
