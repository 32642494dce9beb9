"""report.csv: one row per school and rule, machine-readable (dot decimals, true/false)."""

from __future__ import annotations

import csv
import io

from collector.reports.model import ReportData

COLUMNS = ("school", "district", "category", "rule", "value", "target", "met", "state", "unit",
           "school_name", "policy", "deadline", "status")


def _number(value: float | None) -> str:
    return "" if value is None else repr(round(value, 4))


# A cell starting with one of these is a formula to Excel and LibreOffice (=HYPERLINK(...) in a
# school name would become a link, or worse); a leading apostrophe makes it text (OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """A text cell that a spreadsheet shows as text, never evaluates."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def render_csv(data: ReportData) -> str:
    """The CSV text (header first; rows by school, then rule)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    deadlines = {s.rule.id: s.rule.deadline for s in data.summaries}
    for r in sorted(data.rows, key=lambda row: (row.school.id, row.rule)):
        deadline = deadlines.get(r.rule)
        t = text_cell  # numbers stay as they are: "-3.5" is a number, not a formula
        writer.writerow((t(r.school.id), t(r.school.district), t(r.school.category), t(r.rule),
                         _number(r.value), _number(r.target), "true" if r.met else "false",
                         t(r.state), t(r.unit), t(r.school.name), t(data.policy),
                         "" if deadline is None else t(str(deadline)), t(data.status or "")))
    return out.getvalue()


FLEET_COLUMNS = ("school", "agent", "version", "config_hash", "last_contact_ms", "state")


def render_fleet_csv(data: ReportData) -> str:
    """fleet.csv: one row per agent, as the report's fleet section lists them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FLEET_COLUMNS)
    for r in data.fleet:
        t = text_cell
        writer.writerow((t(r.school), t(r.agent), t(r.version), t(r.config_hash),
                         "" if r.last_ms is None else str(r.last_ms), r.state))
    return out.getvalue()
