"""The report's aggregation, HTML and CSV on hand-built rows (no InfluxDB)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from html.parser import HTMLParser

import pytest

from collector.reports.aggregate import TrendRow, school_rows, summarize, tier_counts, trend
from collector.reports.csvout import COLUMNS, render_csv
from collector.reports.html import fmt_value, render_html
from collector.reports.labels import labels, rule_name
from collector.reports.model import (
    ComplianceRow,
    Period,
    ReportData,
    RuleInfo,
    SchoolInfo,
    TrendPoint,
)

T = 1_763_900_000_000
ACCESS = RuleInfo("access_10m", "接入带宽10M以上的中小学比例达到70%", "access_mbps", ">=", 10,
                  70, "Mbit/s")
MEDIA = RuleInfo("multimedia_ratio", "多媒体教室占普通教室比例达到80% (classrooms up)",
                 "multimedia_uptime", ">=", 80, 80, "%")
SCHOOLS = {
    "s1": SchoolInfo("s1", "d1", "第一小学", "urban", "public"),
    "s2": SchoolInfo("s2", "d1", "<b>Evil & Co</b>", "rural", "public"),
    "s3": SchoolInfo("s3", "d2", "教学点", "teaching_point", "public"),
}


def row(rule: str, scope: str, school: str | None, value: float | None, met: bool, *,
        district: str = "d1", classroom: str | None = None, target: float = 10.0,
        counts: tuple[int, int, int] | None = None) -> ComplianceRow:
    """A compliance point as read back."""
    return ComplianceRow(rule, scope, district, school, classroom, value, target, met,
                         "ok" if value is not None else "no_data", T,
                         *(counts or (None, None, None)))


ACCESS_ROWS = [
    row("access_10m", "school", "s1", 95.0, True),
    row("access_10m", "school", "s2", 8.2, False),
    row("access_10m", "school", "s3", None, False, district="d2"),
]
MEDIA_ROWS = [
    row("multimedia_ratio", "classroom", "s1", 100.0, True, classroom="101", target=80),
    row("multimedia_ratio", "classroom", "s1", 12.5, False, classroom="102", target=80),
    row("multimedia_ratio", "classroom", "s2", 90.0, True, classroom="101", target=80),
    row("multimedia_ratio", "classroom", "s3", None, False, classroom="1", target=80,
        district="d2"),
]


def test_summary_counted_from_school_points_without_no_data() -> None:
    """Schools without data are neither met nor missed; the share's line is the share target."""
    s = summarize(ACCESS, ACCESS_ROWS)
    assert (s.unit, s.counted, s.met, s.no_data, s.target_pct) == ("schools", 2, 1, 1, 70.0)
    assert s.share_pct == 50.0 and s.reaches_target is False


def test_summary_prefers_district_shares_summed_over_districts() -> None:
    """district_share points carry the counts; two districts add up."""
    rows = [*ACCESS_ROWS,
            row("access_10m", "district_share", None, 75.0, True, target=70, counts=(4, 3, 0)),
            row("access_10m", "district_share", None, 50.0, False, target=70, district="d2",
                counts=(2, 1, 1))]
    s = summarize(ACCESS, rows)
    assert (s.counted, s.met, s.no_data) == (6, 4, 1)
    assert s.share_pct == pytest.approx(66.667, abs=0.001)


def test_classroom_rule_counts_classrooms_and_rows_per_school() -> None:
    """A classroom rule's share is over classrooms; per school it is the share of its rooms."""
    s = summarize(MEDIA, MEDIA_ROWS)
    assert (s.unit, s.counted, s.met, s.no_data) == ("classrooms", 3, 2, 1)
    rows = {r.school.id: r for r in school_rows(MEDIA, MEDIA_ROWS, SCHOOLS)}
    assert (rows["s1"].value, rows["s1"].met, rows["s1"].target) == (50.0, False, 80)
    assert (rows["s2"].value, rows["s2"].met) == (100.0, True)
    assert (rows["s3"].value, rows["s3"].state, rows["s3"].met) == (None, "no_data", False)
    assert rows["s1"].unit == "% classrooms"


def test_tiers_with_and_without_tolerance() -> None:
    """Nominal tiers of the measured rate; a rate tolerance lifts 95 Mbit/s into 100M."""
    access = {"a": 3.0, "b": 4.0, "c": 95.0, "d": 1000.0, "e": 12.0}
    names = [*access, "f"]
    assert tier_counts(access, names, 0.0) == {None: 1, 0: 1, 4: 1, 10: 2, 100: 0, 1000: 1}
    assert tier_counts(access, names, 8.0) == {None: 1, 0: 1, 4: 1, 10: 1, 100: 1, 1000: 1}


def test_trend_adds_up_each_bucket() -> None:
    """Share per bucket over the bucket's rows; unknown buckets are dropped."""
    day1, day2 = dt.date(2026, 11, 16), dt.date(2026, 11, 17)
    rows = [TrendRow(1, 4, 3), TrendRow(1, 2, 1), TrendRow(2, 0, 0), TrendRow(3, 1, 1)]
    assert trend(rows, {1: day1, 2: day2}) == [TrendPoint(day1, pytest.approx(66.6667, abs=1e-3)),
                                              TrendPoint(day2, None)]


def test_period_bounds_in_local_time() -> None:
    """Days are local: Asia/Shanghai midnight is 16:00 UTC the day before."""
    p = Period(dt.date(2026, 11, 16), dt.date(2026, 11, 17), "Asia/Shanghai")
    assert p.start_ms == int(dt.datetime(2026, 11, 15, 16, tzinfo=dt.UTC).timestamp() * 1000)
    assert p.end_ms - p.start_ms == 2 * 86_400_000
    assert p.bucket_days == 1
    assert Period(dt.date(2026, 1, 1), dt.date(2026, 6, 30)).bucket_days == 7


def test_statistics_and_names() -> None:
    """Rule names per language; values formatted with their unit."""
    assert rule_name("access_10m", ACCESS.title, "en") == "Access >= 10 Mbit/s"
    assert rule_name("custom", "本地指标 (local target)", "en") == "local target"
    assert rule_name("custom", "本地指标 (local target)", "zh-CN") == "本地指标"
    assert fmt_value(1.0, "0/1", labels("zh-CN")) == "是"
    assert fmt_value(None, "Mbit/s", labels("en")) == "no data"
    assert fmt_value(8.25, "Mbit/s", labels("en")) == "8.25 Mbit/s"


def report_data() -> ReportData:
    """A small report: two rules, three schools, a three-day trend."""
    days = [dt.date(2026, 11, d) for d in (16, 17, 18)]
    rows = school_rows(ACCESS, ACCESS_ROWS, SCHOOLS) + school_rows(MEDIA, MEDIA_ROWS, SCHOOLS)
    return ReportData(
        policy="cn-moe-2017", policy_title="2017年教育信息化工作要点",
        period=Period(days[0], days[-1]), schools=list(SCHOOLS.values()),
        tiers={None: 1, 0: 0, 4: 0, 10: 1, 100: 0, 1000: 1},
        summaries=[summarize(ACCESS, ACCESS_ROWS), summarize(MEDIA, MEDIA_ROWS)], rows=rows,
        trend={"access_10m": [TrendPoint(d, v) for d, v in zip(days, (40.0, 45.5, 50.0),
                                                               strict=True)],
               "multimedia_ratio": [TrendPoint(days[2], 66.7)]},
        generated_ms=T)


class Checker(HTMLParser):
    """Collects text, checks that every opened element is closed in order."""

    VOID = frozenset({"meta", "br", "rect", "line", "circle", "polyline", "img"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.attrs: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Checker:
    """Parse a page; assert it is balanced."""
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    return checker


def test_html_is_well_formed_self_contained_and_shows_the_numbers() -> None:
    """Balanced elements, a CSP forbidding external resources, every figure present."""
    page = render_html(report_data(), "en")
    assert page.startswith("<!DOCTYPE html>")
    checker = parse(page)
    text = " ".join(checker.text)
    assert "default-src 'none'" in page and "<script" not in page
    refs = [v for a in checker.attrs for k, v in a.items() if k in ("src", "href") and v]
    assert refs == []
    assert 'data-rule="access_10m" data-share="50.0" data-met="1" data-counted="2"' in page
    assert 'data-rule="multimedia_ratio" data-share="66.7" data-met="2" data-counted="3"' in page
    assert "50.0 %" in text and "1 / 2 schools" in text and "2 / 3 classrooms" in text
    assert "8.2 Mbit/s" in text  # s2's access in the table of misses
    assert "&lt;b&gt;Evil &amp; Co&lt;/b&gt;" in page and "<b>Evil" not in page
    assert page.count("<svg") == 3 and "45.5" not in text  # trend values are drawn, not printed
    assert 'data-tier="none">1<' in page and 'data-tier="1000">1<' in page


def test_html_in_chinese() -> None:
    """zh-CN labels and the profile's Chinese titles."""
    page = render_html(report_data(), "zh-CN")
    parse(page)
    assert '<html lang="zh-CN">' in page
    assert "未达标的学校" in page and "接入带宽10M以上的中小学比例达到70%" in page
    assert "多媒体教室占普通教室比例达到80%" in page and "(classrooms up)" not in page
    assert "城镇" in page and "农村" in page


def test_csv_has_one_row_per_school_and_rule() -> None:
    """Header, then school x rule with machine-readable values."""
    text = render_csv(report_data())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["school"], r["rule"]) for r in rows] == [
        ("s1", "access_10m"), ("s1", "multimedia_ratio"), ("s2", "access_10m"),
        ("s2", "multimedia_ratio"), ("s3", "access_10m"), ("s3", "multimedia_ratio")]
    s2 = rows[2]
    assert (s2["district"], s2["category"], s2["value"], s2["target"], s2["met"]) == (
        "d1", "rural", "8.2", "10.0", "false")
    assert rows[1]["value"] == "50.0" and rows[1]["unit"] == "% classrooms"
    assert rows[4]["value"] == "" and rows[4]["state"] == "no_data"
    assert rows[2]["school_name"] == "<b>Evil & Co</b>"


def test_deadline_status_and_source_from_the_profile() -> None:
    """with_profile: each target's deadline and whole sentence, the document's status, shown in
    the HTML (zh-CN) and the CSV; a profile-less report shows none of it."""
    from collector.reports.command import with_profile
    from collector.rules import load_policy

    data = with_profile(report_data(), load_policy("cn-moe-2017"))
    assert (data.status, data.summary("access_10m").rule.deadline) == (  # type: ignore[union-attr]
        "work_points", 2017)
    page = render_html(data, "zh-CN")
    parse(page)
    assert '<span id="status" data-status="work_points">年度工作要点</span>' in page
    assert page.count('data-deadline="2017"') == 2
    assert "接入帶寬10M以上的中小學比例達到70%,多媒體教室占普通教室比例達到80%" in page
    rows = list(csv.DictReader(io.StringIO(render_csv(data))))
    assert {(r["deadline"], r["status"]) for r in rows} == {("2017", "work_points")}
    bare = render_csv(report_data())
    assert {(r["deadline"], r["status"]) for r in csv.DictReader(io.StringIO(bare))} == {("", "")}
