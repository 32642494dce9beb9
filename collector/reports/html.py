"""report.html: one self-contained page (inline CSS and SVG, no script, nothing fetched).

A Content-Security-Policy forbids every external resource, so a page that tried to load one
would show an error in the browser console; the browser test checks there is none.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from zoneinfo import ZoneInfo

from collector.reports.labels import Labels, labels, rule_name
from collector.reports.model import TIER_KEYS, ReportData, RuleSummary, SchoolRuleRow
from collector.reports.svg import DASH, TIER_COLORS, bar_chart, line_chart, share_chart
from collector.rules.results import tier_label

MAX_MISS_ROWS = 1000  # the table stays readable; report.csv has every row

CSS = """
body{font-family:'Noto Sans CJK SC','WenQuanYi Zen Hei','Microsoft YaHei',sans-serif;
margin:24px;color:#1a202c;background:#fff}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#e2e8f0;padding-bottom:4px}.meta{color:#4a5568;font-size:13px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #e2e8f0;padding:4px 8px;
text-align:left}th{background:#f7fafc}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok,.live{color:#2f855a;font-weight:600}.at_risk{color:#c05621;font-weight:600}
.dropped_off{color:#c53030;font-weight:600}.miss{color:#c53030;font-weight:600}.note{color:#718096;
font-size:12px}svg{max-width:100%;height:auto}
"""


def fmt_number(value: float | None) -> str:
    """A figure as the report prints it."""
    if value is None:
        return DASH
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}".rstrip("0")


def fmt_value(value: float | None, unit: str, lab: Labels) -> str:
    """A value with its unit ('0/1' values as yes/no)."""
    if value is None:
        return lab.no_data
    if unit == "0/1":
        return lab.yes if value >= 1 else lab.no
    if unit.startswith("%"):
        return f"{value:.1f} %"
    return f"{fmt_number(value)} {unit}".strip()


def _summary_table(data: ReportData, lang: str, lab: Labels) -> str:
    head = (f"<tr><th>{lab.rule}</th><th>{lab.share}</th><th>{lab.counted}</th>"
            f"<th>{lab.target}</th><th>{lab.deadline}</th><th></th></tr>")
    rows = []
    for s in data.summaries:
        share = s.share_pct
        unit = lab.unit_classrooms if s.unit == "classrooms" else lab.unit_schools
        status = ("" if s.reaches_target is None else
                  f'<span class="ok">{lab.reached}</span>' if s.reaches_target else
                  f'<span class="miss">{lab.not_reached}</span>')
        no_data = f" ({lab.no_data}: {s.no_data})" if s.no_data else ""
        target = f"{s.target_pct:.0f} %" + (f" ({lab.basically})" if s.rule.basically else "")
        deadline = DASH if s.rule.deadline is None else str(s.rule.deadline)
        rows.append(
            f'<tr data-rule="{escape(s.rule.id)}" data-share="'
            f'{"" if share is None else f"{share:.1f}"}" data-met="{s.met}" '
            f'data-counted="{s.counted}"><td>{escape(rule_name(s.rule.id, s.rule.title, lang))}'
            f'<br><span class="note">{escape(s.rule.id)}</span></td>'
            f'<td class="num">{DASH if share is None else f"{share:.1f} %"}</td>'
            f'<td class="num">{s.met} / {s.counted} {unit}{escape(no_data)}</td>'
            f'<td class="num">{escape(target)}</td>'
            f'<td class="num" data-deadline="{escape(deadline)}">{deadline}</td>'
            f"<td>{status}</td></tr>")
    return f'<table class="summary">{head}{"".join(rows)}</table>'


def _sources(data: ReportData, lang: str, lab: Labels) -> str:
    """Each target with its deadline and the whole sentence it comes from."""
    status = lab.statuses.get(data.status or "", data.status or DASH)
    head = (f'<p class="meta" id="document">{lab.document}: {escape(data.document or DASH)} · '
            f'<span id="status" data-status="{escape(data.status or "")}">'
            f"{escape(status)}</span></p>")
    rows = "".join(
        f'<tr data-rule="{escape(s.rule.id)}"><td>'
        f"{escape(rule_name(s.rule.id, s.rule.title, lang))}</td>"
        f'<td class="num">{DASH if s.rule.deadline is None else s.rule.deadline}</td>'
        f'<td class="source">{escape(s.rule.source) or DASH}</td></tr>'
        for s in data.summaries)
    return (f'{head}<table class="sources"><tr><th>{lab.rule}</th><th>{lab.deadline}</th>'
            f"<th>{lab.source}</th></tr>{rows}</table>")


def _tiers(data: ReportData, lab: Labels) -> str:
    names = [lab.no_test if t is None else tier_label(t) for t in TIER_KEYS]
    counts = [data.tiers.get(t, 0) for t in TIER_KEYS]
    chart = bar_chart(names, counts, title=lab.tiers_title, colors=TIER_COLORS)
    cells = "".join(f'<td class="num" data-tier="{"none" if t is None else t}">{n}</td>'
                    for t, n in zip(TIER_KEYS, counts, strict=True))
    heads = "".join(f"<th>{escape(n)}</th>" for n in names)
    note = lab.tiers_note.format(stat=data.percentile)
    return (f'{chart}<table class="tiers"><tr>{heads}</tr><tr>{cells}</tr></table>'
            f'<p class="note">{escape(note)}</p>')


def _shares(summaries: list[RuleSummary], lang: str, lab: Labels) -> str:
    items = [(rule_name(s.rule.id, s.rule.title, lang), s.share_pct, s.target_pct)
             for s in summaries]
    return share_chart(items, title=lab.shares_title)


def _trend(data: ReportData, lang: str, lab: Labels) -> str:
    days = sorted({p.day for points in data.trend.values() for p in points})
    if not days:
        return f'<p class="note">{lab.no_data}</p>'
    series = []
    for s in data.summaries:
        points = {p.day: p.share_pct for p in data.trend.get(s.rule.id, [])}
        if points:
            series.append((rule_name(s.rule.id, s.rule.title, lang),
                           [points.get(d) for d in days]))
    return line_chart([d.strftime("%m-%d") for d in days], series, title=lab.trend_title)


def _misses(rows: list[SchoolRuleRow], data: ReportData, lang: str, lab: Labels) -> str:
    if not rows:
        return f"<p>{lab.misses_none}</p>"
    names = {s.rule.id: rule_name(s.rule.id, s.rule.title, lang) for s in data.summaries}
    head = (f"<tr><th>{lab.school}</th><th>{lab.name}</th><th>{lab.district}</th>"
            f"<th>{lab.category}</th><th>{lab.rule}</th><th>{lab.value}</th>"
            f"<th>{lab.target}</th></tr>")
    body = []
    for r in rows[:MAX_MISS_ROWS]:
        category = lab.categories.get(r.school.category, r.school.category)
        body.append(
            f'<tr data-school="{escape(r.school.id)}" data-rule="{escape(r.rule)}">'
            f"<td>{escape(r.school.id)}</td><td>{escape(r.school.name)}</td>"
            f"<td>{escape(r.school.district)}</td><td>{escape(category)}</td>"
            f"<td>{escape(names.get(r.rule, r.rule))}</td>"
            f'<td class="num">{escape(fmt_value(r.value, r.unit, lab))}</td>'
            f'<td class="num">{escape(fmt_value(r.target, r.unit, lab))}</td></tr>')
    more = (f'<p class="note">{lab.misses_more.format(n=MAX_MISS_ROWS)}</p>'
            if len(rows) > MAX_MISS_ROWS else "")
    return f'<table class="misses">{head}{"".join(body)}</table>{more}'


def _fleet(data: ReportData, lab: Labels) -> str:
    """Every agent, worst state first: release, config fingerprint, last contact."""
    if not data.fleet:
        return f"<p>{lab.fleet_none}</p>"
    zone = ZoneInfo(data.period.tz)
    names = {s.id: s.name for s in data.schools}
    head = (f"<tr><th>{lab.school}</th><th>{lab.name}</th><th>{lab.agent}</th>"
            f"<th>{lab.version}</th><th>{lab.config}</th><th>{lab.last_contact}</th>"
            f"<th>{lab.state}</th></tr>")
    body = []
    for r in data.fleet:
        last = (lab.never if r.last_ms is None else
                f"{dt.datetime.fromtimestamp(r.last_ms / 1000, zone):%Y-%m-%d %H:%M}")
        body.append(
            f'<tr data-agent="{escape(r.agent)}" data-state="{r.state}" '
            f'data-version="{escape(r.version)}"><td>{escape(r.school)}</td>'
            f"<td>{escape(names.get(r.school, ''))}</td><td>{escape(r.agent)}</td>"
            f"<td>{escape(r.version) or DASH}</td><td>{escape(r.config_hash) or DASH}</td>"
            f'<td class="num">{last}</td>'
            f'<td class="{r.state}">{escape(lab.fleet_states[r.state])}</td></tr>')
    counts = " · ".join(f"{lab.fleet_states[state]}: "
                        f"{sum(r.state == state for r in data.fleet)}"
                        for state in ("live", "at_risk", "dropped_off"))
    return (f'<p class="meta" id="fleet-counts">{escape(counts)}</p>'
            f'<table class="fleet">{head}{"".join(body)}</table>'
            f'<p class="note">{escape(lab.fleet_note)}</p>')


def render_html(data: ReportData, language: str) -> str:
    """The whole page."""
    lab = labels(language)
    lang = "zh-CN" if language == "zh-CN" else "en"
    zone = ZoneInfo(data.period.tz)
    generated = dt.datetime.fromtimestamp(data.generated_ms / 1000, zone)
    period = f"{data.period.first.isoformat()} {DASH} {data.period.last.isoformat()}"
    status = lab.statuses.get(data.status or "", "")
    meta = (f"{lab.policy}: {escape(data.policy_title)} ({escape(data.policy)})"
            f"{f' [{escape(status)}]' if status else ''} · "
            f"{lab.period}: {period} ({escape(data.period.tz)}) · "
            f'{lab.schools}: <span id="school-count">{len(data.schools)}</span> · '
            f"{lab.generated}: {generated:%Y-%m-%d %H:%M}")
    misses = sorted(data.misses, key=lambda r: (r.school.district, r.school.id, r.rule))
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(lab.title)} · {escape(data.policy)}</title><style>{CSS}</style>"
        f'</head><body><h1>{escape(lab.title)}</h1><p class="meta">{meta}</p>'
        f'<h2>{lab.summary_title}</h2>{_summary_table(data, lang, lab)}'
        f'<h2>{lab.targets_title}</h2><div id="sources">{_sources(data, lang, lab)}</div>'
        f'<h2>{lab.tiers_title}</h2><div id="tiers">{_tiers(data, lab)}</div>'
        f'<h2>{lab.shares_title}</h2><div id="shares">{_shares(data.summaries, lang, lab)}</div>'
        f'<h2>{lab.trend_title}</h2><div id="trend">{_trend(data, lang, lab)}</div>'
        f'<h2>{lab.misses_title} (<span id="miss-schools">'
        f'{len({r.school.id for r in misses})}</span>)</h2>'
        f'<div id="misses">{_misses(misses, data, lang, lab)}</div>'
        f'<h2>{lab.fleet_title}</h2><div id="fleet">{_fleet(data, lab)}</div>'
        "</body></html>\n")
