"""report.csv: one row per school and rule, machine-readable (dot decimals, true/false)."""

from __future__ import annotations

import csv
import io

from collector.reports.model import ReportData

COLUMNS = ("school", "district", "category", "rule", "value", "target", "met", "state", "unit",
           "school_name", "policy", "deadline", "status")


def _number(value: float | None) -> str:
    return "" if value is None else repr(round(value, 4))


def render_csv(data: ReportData) -> str:
    """The CSV text (header first; rows by school, then rule)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    deadlines = {s.rule.id: s.rule.deadline for s in data.summaries}
    for r in sorted(data.rows, key=lambda row: (row.school.id, row.rule)):
        deadline = deadlines.get(r.rule)
        writer.writerow((r.school.id, r.school.district, r.school.category, r.rule,
                         _number(r.value), _number(r.target), "true" if r.met else "false",
                         r.state, r.unit, r.school.name, data.policy,
                         "" if deadline is None else deadline, data.status or ""))
    return out.getvalue()
