"""Reading a report's data from InfluxDB: compliance points of one policy and speed tests.

Four kinds of query, all bounded by the period: the newest point of every compliance series
(``GROUP BY * ORDER BY time DESC LIMIT 1``), the districts' shares per trend bucket, the
per-school (per-classroom) outcomes per bucket for rules without district shares, and the
raw speed tests, whose configured percentile the tier chart takes in Python.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from collector.inventory import Inventory
from collector.measurements import COMPLIANCE, SHARE_UNITS, share_fields
from collector.reports.aggregate import TrendRow, school_rows, summarize, tier_counts, trend
from collector.reports.fleet import read_fleet
from collector.reports.model import (
    ComplianceRow,
    Period,
    ReportData,
    RuleInfo,
    SchoolInfo,
    TrendPoint,
)
from collector.reports.query import InfluxReader, quote_literal
from collector.rules.policy import METRICS, PolicyProfile
from common.figures import statistic
from common.kinds import declared

_UNITS = SHARE_UNITS
# Field names checked against the declaration at import: a typo here fails at once.
_VALUE, _TARGET, _MET, _STATE = (COMPLIANCE.field(f) for f in ("value", "target", "met", "state"))
_SPEED = declared("speedtest", "down_mbps", "number")  # common/kinds.py


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _where(policy: str, period: Period) -> str:
    return (f'"policy" = {quote_literal(policy)} AND time >= {period.start_ms}ms '
            f"AND time < {period.end_ms}ms")


def read_latest(reader: InfluxReader, policy: str, period: Period) -> list[ComplianceRow]:
    """The newest point of every compliance series of the policy in the period."""
    series = reader.query(f'SELECT * FROM "{COMPLIANCE.name}" WHERE '
                          f"{_where(policy, period)} GROUP BY * ORDER BY time DESC LIMIT 1")
    rows = []
    for s in series:
        tags, row = s.tags, s.rows[0]
        unit = next((u for u in _UNITS if _count(row.get(u)) is not None), None)
        n, n_met, n_none = share_fields(unit) if unit else ("", "", "")
        rows.append(ComplianceRow(
            rule=tags.get("rule", ""), scope=tags.get("scope", ""),
            district=tags.get("district", ""), school=tags.get("school") or None,
            classroom=tags.get("classroom") or None, value=_number(row.get(_VALUE)),
            target=_number(row.get(_TARGET)) or 0.0, met=row.get(_MET) is True,
            state=str(row.get(_STATE) or ("ok" if row.get(_VALUE) is not None else "no_data")),
            ts_ms=int(row["time"]),
            counted=_count(row.get(n)) if unit else None,
            counted_met=_count(row.get(n_met)) if unit else None,
            counted_no_data=_count(row.get(n_none)) if unit else None))
    return rows


def _group_time(period: Period) -> str:
    # Weeks start on Monday: the epoch was a Thursday, so offset the 7d buckets by 4 days.
    step = "1d" if period.bucket_days == 1 else "7d, 4d"
    return f"time({step})"


def _bucket_day(ms: int, tz: str) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).date()


def read_trend(reader: InfluxReader, policy: str, period: Period,
               school_rules: list[str], room_rules: list[str]) -> dict[str, list[TrendPoint]]:
    """Share per day (or week) of every rule: district shares, else counted from schools/rooms."""
    tz = f"tz({quote_literal(period.tz)})"
    by_rule: dict[str, list[TrendRow]] = {}
    days: dict[int, dt.date] = {}
    shares = reader.query(
        f'SELECT last(*) FROM "{COMPLIANCE.name}" WHERE {_where(policy, period)} AND '
        f"\"scope\" = 'district_share' GROUP BY {_group_time(period)}, \"rule\", \"district\" "
        f"fill(none) {tz}")
    for s in shares:
        for row in s.rows:
            unit = next((u for u in _UNITS if _count(row.get(f"last_{u}")) is not None), None)
            if unit is None:
                continue
            days[row["time"]] = _bucket_day(row["time"], period.tz)
            n, n_met, _ = share_fields(unit)
            by_rule.setdefault(s.tags["rule"], []).append(TrendRow(
                row["time"], _count(row[f"last_{n}"]) or 0,
                _count(row.get(f"last_{n_met}")) or 0))
    for scope, rules, keys in (("school", school_rules, '"rule", "school"'),
                               ("classroom", room_rules, '"rule", "school", "classroom"')):
        todo = [r for r in rules if r not in by_rule]
        if not todo:
            continue
        pattern = "|".join(_regex_escape(r) for r in todo)
        series = reader.query(
            f'SELECT last("{_MET}") AS met, last("{_STATE}") AS state FROM '
            f'"{COMPLIANCE.name}" WHERE {_where(policy, period)} AND '
            f"\"scope\" = '{scope}' AND \"rule\" =~ /^({pattern})$/ GROUP BY "
            f"{_group_time(period)}, {keys} fill(none) {tz}")
        for s in series:
            for row in s.rows:
                days[row["time"]] = _bucket_day(row["time"], period.tz)
                ok = row.get("state") == "ok"
                by_rule.setdefault(s.tags["rule"], []).append(
                    TrendRow(row["time"], int(ok), int(ok and row.get("met") is True)))
    return {rule: trend(rows, days) for rule, rows in by_rule.items()}


def _regex_escape(text: str) -> str:
    return "".join("\\" + c if not (c.isalnum() or c == "_") else c for c in text)


def read_access(reader: InfluxReader, period: Period, statistic_name: str) -> dict[str, float]:
    """Per school, the statistic of its speed-test downloads over the period (Mbit/s).

    Computed here from the raw tests with the rules' own :func:`common.figures.statistic`:
    InfluxQL's ``percentile()`` rounds the rank where the rules take the nearest rank, so a
    school with 7 tests would sit in one tier in the report and another in the rules.
    """
    # Streamed in chunks: a district's tests over a semester are millions of rows.
    series = reader.query_chunked(
        f'SELECT "{_SPEED}" FROM "speedtest" WHERE time >= {period.start_ms}ms '
        f'AND time < {period.end_ms}ms GROUP BY "school"')
    tests: dict[str, list[float]] = {}
    for s in series:
        # As the rules engine: a test of 0 (or none) is a failed test, not a measurement.
        tests.setdefault(s.tags.get("school", ""), []).extend(
            v for row in s.rows if (v := _number(row.get(_SPEED))) is not None
            and v > 0 and not math.isnan(v))
    return {school: statistic(values, statistic_name)
            for school, values in tests.items() if values}


def rule_infos(profile: PolicyProfile | None, rows: Iterable[ComplianceRow]) -> list[RuleInfo]:
    """The rules in profile order; rules only found in the data after them."""
    infos = []
    if profile is not None:
        for r in profile.rules:
            infos.append(RuleInfo(r.id, r.title or r.id, r.metric, r.comparator, r.threshold,
                                  r.share_target, METRICS[r.metric].unit))
    known = {i.id for i in infos}
    for rule in sorted({r.rule for r in rows} - known):
        infos.append(RuleInfo(rule, rule))
    return infos


def school_infos(inventory: Inventory | None, rows: list[ComplianceRow]) -> list[SchoolInfo]:
    """Schools of the inventory, else those the compliance points name."""
    if inventory is not None:
        return [SchoolInfo(s.id, s.district, s.name, s.category, s.ownership)
                for s in inventory.schools]
    seen = {r.school: r.district for r in rows if r.school}
    return [SchoolInfo(school, district) for school, district in sorted(seen.items())]


def build_report(reader: InfluxReader, policy: str, period: Period, *,
                 profile: PolicyProfile | None, inventory: Inventory | None,
                 statistic: str = "p90", tolerance_pct: float = 0.0,
                 generated_ms: int = 0) -> ReportData:
    """Read everything the report shows."""
    latest = read_latest(reader, policy, period)
    infos = rule_infos(profile, latest)
    schools = school_infos(inventory, latest)
    by_id = {s.id: s for s in schools}
    summaries, rows = [], []
    school_rules: list[str] = []
    room_rules: list[str] = []
    for info in infos:
        mine = [r for r in latest if r.rule == info.id]
        if not mine:
            continue
        summaries.append(summarize(info, mine))
        rows.extend(school_rows(info, mine, by_id))
        (room_rules if any(r.scope == "classroom" for r in mine) else school_rules).append(
            info.id)
    access = read_access(reader, period, statistic)
    names = [s.id for s in schools] or sorted(access)
    return ReportData(
        policy=policy, policy_title=profile.title if profile else policy, period=period,
        schools=schools, tiers=tier_counts(access, names, tolerance_pct),
        summaries=summaries, rows=rows,
        trend=read_trend(reader, policy, period, school_rules, room_rules),
        generated_ms=generated_ms, percentile=statistic,
        # As of the period's end, or now for a period not over yet.
        fleet=read_fleet(reader, min(generated_ms or period.end_ms, period.end_ms), inventory))


def inventory_path(config_path: str | Path, inventory: str | None) -> Path | None:
    """The inventory file named by collector.yaml (relative to its directory)."""
    return None if not inventory else Path(config_path).parent / inventory
