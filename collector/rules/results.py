"""What the rules engine hands out: compliance results, school status, and their points.

This is the contract the report and alert code build on; see docs/policies.md, section
"For other code".  A pass makes a million results at province scale: they are typed
NamedTuples (immutable, cheap to build, and untracked by the cyclic garbage collector once they
hold only strings and numbers), and their points are formatted without a generic formatter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

from collector.measurements import COMPLIANCE, SCHOOL_STATUS, share_fields
from collector.storage.lineprotocol import escape_key, format_line
from common.figures import TIERS_MBPS, meets
from common.wire import FieldValue

Scope = Literal["school", "classroom", "district_share"]
State = Literal["ok", "no_data"]
Unit = Literal["schools", "classrooms"]
AccessState = Literal["ok", "no_recent_test"]

COMPLIANCE_MEASUREMENT: Final = COMPLIANCE.name
STATUS_MEASUREMENT: Final = SCHOOL_STATUS.name


class ComplianceResult(NamedTuple):
    """One rule checked for one school, classroom, or district (district_share scope).

    ``value`` is None and ``met`` False when ``state`` is ``no_data``.  For a district_share
    result ``value`` is the share (percent) of the district's schools, or of its ordinary
    classrooms for a classroom metric (``unit``), meeting the rule's condition; ``target`` is
    the rule's ``share_target`` and the ``counted*`` figures say how the share was made.
    """

    policy: str
    rule: str
    metric: str
    scope: Scope
    district: str
    school: str | None
    classroom: str | None
    value: float | None
    target: float
    comparator: str
    met: bool
    state: State = "ok"
    unit: Unit = "schools"  # what a district share counts
    counted: int = 0  # with data
    counted_met: int = 0
    counted_no_data: int = 0


class DeviceStatus(NamedTuple):
    """A multimedia device as last seen, with its school-hours uptime over the window."""

    id: str
    classroom: str
    type: str
    up: bool | None  # last sample's ``online``; None: never seen
    last_ms: int | None
    uptime_pct: float | None  # school-hour samples online / all, None: none in the window


class ClassroomWifi(NamedTuple):
    """Wi-Fi of one classroom: the last scan's best school-SSID signal and the window share."""

    classroom: str
    best_rssi_dbm: float | None
    last_ms: int | None
    good_pct: float | None  # share of school-hour scans with best RSSI >= the threshold
    covered: bool | None  # good_pct >= the coverage share; None: no scan in the window


class AgentStatus(NamedTuple):
    """An agent of the school: its last-will status and whether it reports."""

    id: str
    status: str | None  # "online" / "offline" (retained status), None: not heard
    last_ms: int | None  # last sample or status
    fresh: bool


@dataclass(frozen=True, slots=True)
class SchoolStatus:
    """Everything the engine knows about one school now (read-only snapshot)."""

    school: str
    district: str
    category: str | None
    ownership: str | None
    access_mbps: float | None  # the configured percentile of speed-test download, window
    access_state: AccessState
    tier_mbps: int | None  # 0 (< 4), 4, 10, 100, 1000; None without a recent test
    last_speedtest_ms: int | None
    per_class_mbps: float | None
    isp_pct: float | None  # access_mbps as % of contracted_mbps
    internet_up: bool | None
    internet_checked_ms: int | None
    multimedia_ratio: float | None
    wifi_coverage: float | None
    devices_up: int
    devices_down: int
    agents_total: int = 0
    agents_fresh: int = 0
    last_seen_ms: int | None = None
    # Per device, classroom and agent; empty when asked for without detail (periodic pass).
    devices: list[DeviceStatus] = field(default_factory=list)
    wifi: list[ClassroomWifi] = field(default_factory=list)
    agents: list[AgentStatus] = field(default_factory=list)


def tier_of(mbps: float, tolerance_pct: float = 0.0) -> int:
    """The nominal tier a measured rate reaches: 0, 4, 10, 100 or 1000."""
    reached = [t for t in TIERS_MBPS if meets(mbps, t, tolerance_pct)]
    return reached[-1] if reached else 0


def tier_label(tier_mbps: int) -> str:
    """'<4M', '4M', '10M', '100M', '1000M'."""
    return "<4M" if tier_mbps < TIERS_MBPS[0] else f"{tier_mbps}M"


def compliance_lines(results: list[ComplianceResult], ts_ms: int) -> list[str]:
    """Line-protocol points of measurement ``compliance``, one per result.

    Tags and fields as declared in collector/measurements.py (COMPLIANCE): classroom only at
    classroom scope, school absent for district_share; value absent with no data; district
    shares add their ``share_fields(unit)``. Formatted by hand: a million per pass.
    """
    heads: dict[tuple[str, str, str, str], str] = {}
    tails: dict[str, str] = {}
    lines = []
    stamp = f" {ts_ms}"
    for r in results:
        key = (r.district, r.metric, r.policy, r.rule)
        head = heads.get(key)
        if head is None:
            head = heads[key] = (f",district={escape_key(r.district)},metric={escape_key(r.metric)}"
                                 f",policy={escape_key(r.policy)},rule={escape_key(r.rule)}")
        tail = tails.get(r.scope)
        if tail is None:
            tail = tails[r.scope] = f",scope={escape_key(r.scope)} "
        room = f",classroom={escape_key(r.classroom)}" if r.classroom else ""
        school = f",school={escape_key(r.school)}" if r.school else ""
        value = "" if r.value is None else f"value={float(r.value)!r},"
        fields = (f"{value}target={float(r.target)!r},met={'true' if r.met else 'false'},"
                  f'state="{r.state}"')
        if r.scope == "district_share":
            n, n_met, n_none = share_fields(r.unit)
            fields += (f",{n}={float(r.counted)!r},{n_met}={float(r.counted_met)!r}"
                       f",{n_none}={float(r.counted_no_data)!r}")
        lines.append(f"{COMPLIANCE_MEASUREMENT}{room}{head}{school}{tail}{fields}{stamp}")
    return lines


def status_lines(statuses: list[SchoolStatus], ts_ms: int) -> list[str]:
    """Line-protocol points of measurement ``school_status``, one per school."""
    lines = []
    for s in statuses:
        tags = {"district": s.district, "school": s.school, "category": s.category or "",
                "ownership": s.ownership or ""}
        fields: dict[str, FieldValue] = {"access_state": s.access_state,
                                         "devices_up": s.devices_up,
                                         "devices_down": s.devices_down}
        optional: dict[str, float | None] = {
            "access_mbps": s.access_mbps, "tier_mbps": s.tier_mbps,
            "per_class_mbps": s.per_class_mbps, "isp_pct": s.isp_pct,
            "multimedia_ratio": s.multimedia_ratio, "wifi_coverage": s.wifi_coverage}
        fields.update({k: float(v) for k, v in optional.items() if v is not None})
        if s.internet_up is not None:
            fields["internet_up"] = s.internet_up
        if s.agents_total:
            fields["agents_fresh"] = s.agents_fresh
            fields["agents"] = s.agents_total
        lines.append(format_line(STATUS_MEASUREMENT, tags, fields, ts_ms))
    return lines
