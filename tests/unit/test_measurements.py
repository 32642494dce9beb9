"""Every point the collector writes itself matches the one declaration (collector/measurements.py).

The writers format by hand (compliance: a million points per pass) or through format_line; this
parses what they write and holds names, tags, fields and field types against the declaration.
"""

from __future__ import annotations

import re

import pytest

from collector.clocks import ClockBook
from collector.config import ClockSettings
from collector.dashboard_feed import school_info_lines, status_line
from collector.measurements import (
    AGENT_CLOCK,
    AGENT_STATUS,
    COMPLIANCE,
    MEASUREMENTS,
    REJECT,
    SCHOOL_INFO,
    SCHOOL_STATUS,
    Measurement,
)
from collector.rules import ComplianceResult, compliance_lines
from collector.rules.results import SchoolStatus, status_lines
from collector.validate import RejectCounter, Rejected
from common.wire import AgentIdentity
from tests.rules_fixtures import inventory, school

_FIELD = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|true|false|[-0-9.e+]+|nan|inf)(?:,|$)')


def parse(line: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(measurement, tags, field name -> type) of one line-protocol point."""
    head, rest = line.split(" ", 1)
    body, _, _ts = rest.rpartition(" ")
    name, *tag_items = head.split(",")
    tags = dict(item.split("=", 1) for item in tag_items)
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        m = _FIELD.match(body, pos)
        assert m is not None, (body, pos)
        value = m.group(2)
        fields[m.group(1)] = ("string" if value.startswith('"') else
                              "bool" if value in ("true", "false") else "number")
        pos = m.end()
    return name, tags, fields


def check(measurement: Measurement, lines: list[str]) -> set[str]:
    """Assert every line fits the declaration; the fields seen."""
    seen: set[str] = set()
    for line in lines:
        name, tags, fields = parse(line)
        assert name == measurement.name
        assert set(tags) <= measurement.tags, line
        for key, kind in fields.items():
            assert measurement.fields.get(key) == kind, (key, kind, line)
        seen |= set(fields)
    return seen


def test_compliance_points() -> None:
    """School, classroom and district-share results, with and without data."""
    results = [
        ComplianceResult("p", "r", "access_mbps", "school", "d1", "s1", None, 9.2, 10.0, ">=",
                         True),
        ComplianceResult("p", "r", "access_mbps", "school", "d1", "s2", None, None, 10.0, ">=",
                         False, "no_data"),
        ComplianceResult("p", "m", "multimedia_uptime", "classroom", "d1", "s1", "101", 90.0,
                         80.0, ">=", True),
        ComplianceResult("p", "r", "access_mbps", "district_share", "d1", None, None, 50.0,
                         70.0, ">=", False, "ok", "schools", 2, 1, 1),
        ComplianceResult("p", "m", "multimedia_uptime", "district_share", "d1", None, None,
                         100.0, 80.0, ">=", True, "ok", "classrooms", 1, 1, 0),
    ]
    seen = check(COMPLIANCE, compliance_lines(results, 1_000))
    assert seen == set(COMPLIANCE.fields)  # every declared field is written by someone


def test_school_status_points() -> None:
    """A school with every figure and one without any."""
    full = SchoolStatus("s1", "d1", "urban", "public", 95.0, "ok", 100, 1, 9.5, 95.0, True, 2,
                        80.0, 100.0, 3, 1, 2, 2, 5)
    empty = SchoolStatus("s2", "d1", None, None, None, "no_recent_test", None, None, None, None,
                         None, None, None, None, 0, 0)
    seen = check(SCHOOL_STATUS, status_lines([full, empty], 1_000))
    assert seen == set(SCHOOL_STATUS.fields)


def test_dashboard_feed_and_reject_points() -> None:
    """school_info, agent_status and schoolmon_reject."""
    inv = inventory(school("s1", location={"lat": 23.1, "lon": 113.3}))
    assert check(SCHOOL_INFO, school_info_lines(inv, 1_000)) == set(SCHOOL_INFO.fields)
    who = AgentIdentity("d1", "s1", "s1-gw")
    assert check(AGENT_STATUS, [status_line(who, "offline", 1_000)]) == {"online", "state"}
    point = RejectCounter(collector="c1").record(Rejected("schema", 'bad "x"', who), now=1.0)
    assert check(REJECT, [point]) == set(REJECT.fields)


def test_declaration_accessors() -> None:
    """A misspelt field or tag is refused where it is used; names are unique."""
    assert COMPLIANCE.field("met") == "met" and SCHOOL_STATUS.tag("school") == "school"
    with pytest.raises(KeyError, match="no field"):
        COMPLIANCE.field("mett")
    with pytest.raises(KeyError, match="no tag"):
        AGENT_STATUS.tag("classroom")
    assert sorted(MEASUREMENTS) == ["agent_clock", "agent_status", "collector_stats",
                                    "compliance", "rules_late", "school_info", "school_status",
                                    "schoolmon_reject"]


def test_agent_clock_points() -> None:
    """An agent three days slow, as the clock book stores it (collector/clocks.py)."""
    who = AgentIdentity("d1", "s1", "s1-pc")
    lines = ClockBook(ClockSettings(confirm_after=0)).correct(
        who, 1_000_000_000_000, 1_000_259_200_000, []).lines
    assert check(AGENT_CLOCK, list(lines)) == set(AGENT_CLOCK.fields)
