"""From compliance rows to the report's statements: shares per rule, per-school rows, tiers, trend.

Pure functions on the dataclasses of model.py, so they are tested on hand-built rows.  A rule's
share comes from its ``district_share`` points (summed over districts) when it has them, else it
is counted from its school (or classroom) points; schools and classrooms without data are not
counted as misses, as the rules engine does (docs/policies.md).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from collector.reports.model import (
    TIER_KEYS,
    ComplianceRow,
    RuleInfo,
    RuleSummary,
    SchoolInfo,
    SchoolRuleRow,
    TrendPoint,
    Unit,
)
from collector.rules.results import tier_of
from common.figures import meets, quotient


def summarize(rule: RuleInfo, rows: list[ComplianceRow]) -> RuleSummary:
    """How the district does on ``rule`` from its newest points."""
    target = _target_pct(rule, rows)
    shares = [r for r in rows if r.scope == "district_share" and r.counted is not None]
    rooms = [r for r in rows if r.scope == "classroom"]
    unit: Unit = "classrooms" if rooms else "schools"
    if shares:
        counted = sum(r.counted or 0 for r in shares)
        met = sum(r.counted_met or 0 for r in shares)
        no_data = sum(r.counted_no_data or 0 for r in shares)
        return RuleSummary(rule, unit, counted, met, no_data, target)
    points = rooms or [r for r in rows if r.scope == "school"]
    with_data = [r for r in points if r.state == "ok"]
    return RuleSummary(rule, unit, len(with_data), sum(r.met for r in with_data),
                       len(points) - len(with_data), target)


def _target_pct(rule: RuleInfo, rows: list[ComplianceRow]) -> float:
    for r in rows:
        if r.scope == "district_share":
            return r.target
    return rule.share_target if rule.share_target is not None else 100.0


def school_rows(rule: RuleInfo, rows: list[ComplianceRow],
                schools: dict[str, SchoolInfo]) -> list[SchoolRuleRow]:
    """One row per school the rule was checked for.

    A classroom rule becomes, per school, the share of its classrooms meeting it, held against
    the rule's share target (100 % when none is stated).
    """
    out: list[SchoolRuleRow] = []
    rooms: dict[str, list[ComplianceRow]] = defaultdict(list)
    for r in rows:
        if r.school is None:
            continue
        if r.scope == "school":
            out.append(SchoolRuleRow(_school(schools, r), rule.id, r.value, r.target, r.met,
                                     r.state, rule.unit))
        elif r.scope == "classroom":
            rooms[r.school].append(r)
    target = rule.share_target if rule.share_target is not None else 100.0
    for items in rooms.values():
        with_data = [r for r in items if r.state == "ok"]
        info = _school(schools, items[0])
        if not with_data:
            out.append(SchoolRuleRow(info, rule.id, None, target, False, "no_data",
                                     "% classrooms"))
            continue
        share = quotient(sum(r.met for r in with_data), len(with_data), 100)
        out.append(SchoolRuleRow(info, rule.id, share, target, meets(share, target), "ok",
                                 "% classrooms"))
    return sorted(out, key=lambda row: row.school.id)


def _school(schools: dict[str, SchoolInfo], row: ComplianceRow) -> SchoolInfo:
    school_id = row.school or ""
    return schools.get(school_id) or SchoolInfo(school_id, row.district)


def tier_counts(access: dict[str, float], schools: list[str],
                tolerance_pct: float) -> dict[int | None, int]:
    """Schools per nominal tier of their measured access bandwidth (None: no speed test)."""
    counts: dict[int | None, int] = dict.fromkeys(TIER_KEYS, 0)
    for school in schools:
        mbps = access.get(school)
        counts[None if mbps is None else tier_of(mbps, tolerance_pct)] += 1
    return counts


@dataclass(frozen=True)
class TrendRow:
    """One bucket of one rule: a district share's counts, or one school's (room's) outcome."""

    bucket_ms: int
    counted: int
    met: int


def trend(rows: list[TrendRow], bucket_days: dict[int, dt.date]) -> list[TrendPoint]:
    """Share per bucket: met / counted summed over the bucket's rows, oldest first."""
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        totals[r.bucket_ms][0] += r.counted
        totals[r.bucket_ms][1] += r.met
    return [TrendPoint(bucket_days[b], 100.0 * totals[b][1] / totals[b][0] if totals[b][0]
                       else None)
            for b in sorted(totals) if b in bucket_days]
