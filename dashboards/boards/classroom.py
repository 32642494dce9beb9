"""Classroom equipment: device uptime in school hours, projector errors, lamp hours, ratio."""

from __future__ import annotations

from collector.measurements import COMPLIANCE
from dashboards.influxql import (
    CLASSROOM,
    CLASSROOM_VAR,
    DISTRICT,
    DISTRICT_VAR,
    INTERVAL,
    LAMP_CRIT_H,
    LAMP_WARN_H,
    SCHOOL,
    SCHOOL_VAR,
    SCOPE_DISTRICT,
    TIME,
    dashboard_link,
    where,
)
from dashboards.model import (
    ERROR_LEVELS,
    UP_DOWN,
    Bars,
    Calc,
    Dashboard,
    JoinByField,
    Organize,
    Panel,
    Row,
    Stat,
    Step,
    Table,
    Target,
    Timeline,
)

ROOMS = where(SCHOOL, CLASSROOM, TIME)
PROJECTORS = where(SCHOOL, CLASSROOM, "\"device_type\" = 'projector'", TIME)
ONLINE = '"online" = true'
MULTIMEDIA = '"rule" =~ /multimedia/'


def _rooms(extra: str = "") -> str:
    """Classrooms with at least one av sample (matching ``extra``) in the time range."""
    cond = where(ROOMS, extra) if extra else ROOMS
    return (f'SELECT count("n") AS "classrooms" FROM (SELECT count("online") AS "n" '
            f'FROM "av" WHERE {cond} GROUP BY "classroom")')


def dashboard() -> Dashboard:
    """Multimedia equipment of the selected classrooms."""
    back = dashboard_link("schoolmon-school", "school", "School", "district", "school")
    return Dashboard(
        uid="schoolmon-classroom", title="schoolmon / Classroom equipment",
        description="Projectors, panels and PCs: uptime in school hours, errors, lamp hours.",
        variables=(DISTRICT_VAR, SCHOOL_VAR, CLASSROOM_VAR),
        panels=(
            Row("Multimedia classrooms"),
            Panel("Multimedia ratio (rules engine)", Stat(), (Target("A", (
                f'SELECT last("value") AS "ratio" FROM "{COMPLIANCE.name}" '
                f"WHERE {where(DISTRICT, MULTIMEDIA, TIME)} "
                f"AND ({SCHOOL} OR {SCOPE_DISTRICT}) GROUP BY \"scope\""),
                alias="$tag_scope"),),
                  w=6, h=5, unit="percent", min=0, max=100, links=(back,),
                  steps=(Step("red"), Step("orange", 80), Step("green", 100)),
                  description="Ordinary classrooms whose multimedia device was up for enough "
                              "of the school hours / ordinary classrooms (target 80-100 %): "
                              "this school's result where a policy has one, and the "
                              "district share (scope district_share)."),
            Panel("Classrooms with equipment answering", Stat(), (Target("A", _rooms(ONLINE)),),
                  w=6, h=5, no_value="0",
                  description="Selected classrooms where a device answered at least once."),
            Panel("Classrooms monitored", Stat(), (Target("A", _rooms()),), w=6, h=5,
                  no_value="0"),
            Panel("Devices down now", Stat(color_mode="background"), (Target("A", (
                'SELECT count("online") AS "down" FROM (SELECT last("online") AS "online" '
                f'FROM "av" WHERE {ROOMS} GROUP BY "device") WHERE "online" = false')),),
                  w=6, h=5, no_value="0", steps=(Step("green"), Step("red", 1))),
            Panel("Device uptime in school hours", Bars(), (
                Target("A", f'SELECT count("online") AS "up" FROM "av" '
                            f'WHERE {where(ROOMS, ONLINE)} GROUP BY "device"', fmt="table"),
                Target("B", f'SELECT count("online") AS "samples" FROM "av" WHERE {ROOMS} '
                            'GROUP BY "device"', fmt="table")),
                  w=10, h=10, unit="percent", min=0, max=100,
                  steps=(Step("red"), Step("orange", 80), Step("green", 95)),
                  transformations=(JoinByField("device"), Calc("share", "up", "/", "samples"),
                                   Calc("uptime", "share", "*", "100"),
                                   Organize(("Time", "Time 1", "Time 2", "up", "samples",
                                             "share"))),
                  description="Share of checks the device answered. The av and pjlink probes "
                              "run in school hours only (school_hours_only: true), so this is "
                              "uptime in school hours."),
            Panel("Device state", Timeline(), (Target("A", (
                f'SELECT last("online") FROM "av" WHERE {ROOMS} '
                f'GROUP BY {INTERVAL}, "classroom", "device" fill(none)'),
                alias="$tag_classroom $tag_device"),), w=14, h=10, mappings=UP_DOWN),
            Row("Projectors"),
            Panel("Projector errors (PJLink ERST, latest)", Table(sort_by="classroom"), (
                Target("A", 'SELECT last("err_fan") AS "fan", last("err_lamp") AS "lamp", '
                            'last("err_temp") AS "temperature", last("err_cover") AS "cover", '
                            'last("err_filter") AS "filter", last("err_other") AS "other" '
                            f'FROM "av" WHERE {PROJECTORS} GROUP BY "classroom", "device"',
                       fmt="table"),), w=12, h=8, mappings=ERROR_LEVELS),
            Panel("Lamp hours", Bars(), (Target("A", (
                f'SELECT last("lamp_hours") FROM "av" WHERE {PROJECTORS} '
                'GROUP BY "classroom", "device"'), alias="$tag_classroom $tag_device"),),
                  w=12, h=8, unit="h", min=0,
                  steps=(Step("green"), Step("orange", LAMP_WARN_H), Step("red", LAMP_CRIT_H)),
                  description=f"Warn at {LAMP_WARN_H} h, replace at {LAMP_CRIT_H} h "
                              "(typical lamp life; check the model's rating)."),
            Panel("Projector power", Timeline(), (Target("A", (
                f'SELECT last("power") FROM "av" WHERE {PROJECTORS} '
                f'GROUP BY {INTERVAL}, "classroom", "device" fill(none)'),
                alias="$tag_classroom $tag_device"),), w=24, h=6),
        ),
    )
