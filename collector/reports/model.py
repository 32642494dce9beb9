"""The report's data: what was read from InfluxDB and what the report states (plain dataclasses)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

Unit = Literal["schools", "classrooms"]
FleetState = Literal["live", "at_risk", "dropped_off"]
# Tier keys of the "schools per tier" chart: None (no speed test in the period) and the nominal
# tiers of collector.rules.results.tier_of.
TIER_KEYS: tuple[int | None, ...] = (None, 0, 4, 10, 100, 1000)


@dataclass(frozen=True)
class Period:
    """Local calendar days ``first``..``last`` (inclusive) in time zone ``tz``."""

    first: dt.date
    last: dt.date
    tz: str = "Asia/Shanghai"

    @property
    def start_ms(self) -> int:
        """Local midnight starting ``first``."""
        return _midnight(self.first, self.tz)

    @property
    def end_ms(self) -> int:
        """Local midnight after ``last`` (exclusive end)."""
        return _midnight(self.last + dt.timedelta(days=1), self.tz)

    @property
    def bucket_days(self) -> int:
        """Trend resolution: per day up to two months, else per week."""
        return 1 if (self.last - self.first).days < 62 else 7


def _midnight(day: dt.date, tz: str) -> int:
    return int(dt.datetime.combine(day, dt.time(), ZoneInfo(tz)).timestamp() * 1000)


@dataclass(frozen=True)
class ComplianceRow:
    """One compliance point as read (the newest of its series in the period)."""

    rule: str
    scope: str  # school | classroom | district_share
    district: str
    school: str | None
    classroom: str | None
    value: float | None
    target: float
    met: bool
    state: str
    ts_ms: int
    counted: int | None = None  # district_share: with data
    counted_met: int | None = None
    counted_no_data: int | None = None


@dataclass(frozen=True)
class SchoolInfo:
    """What the inventory says about a school (only the id and district when it has none)."""

    id: str
    district: str
    name: str = ""
    category: str = ""
    ownership: str = ""


@dataclass(frozen=True)
class RuleInfo:
    """A rule of the policy profile, as the report names it."""

    id: str
    title: str
    metric: str = ""
    comparator: str = ">="
    threshold: float | None = None
    share_target: float | None = None  # percent; None: no district share stated
    unit: str = ""  # of the metric: Mbit/s, %, 0/1
    deadline: int | None = None  # the year the document sets
    source: str = ""  # the document's whole sentence
    basically: bool = False  # "基本": no exact share stated


@dataclass(frozen=True)
class RuleSummary:
    """How the district does on one rule."""

    rule: RuleInfo
    unit: Unit
    counted: int  # schools (or classrooms) with data
    met: int
    no_data: int
    target_pct: float  # the line the share is held against (100 when no share is stated)

    @property
    def share_pct(self) -> float | None:
        """Share meeting the rule, percent of those with data."""
        return 100.0 * self.met / self.counted if self.counted else None

    @property
    def reaches_target(self) -> bool | None:
        """Share >= its target; None without data."""
        share = self.share_pct
        return None if share is None else share >= self.target_pct - 1e-9


@dataclass(frozen=True)
class SchoolRuleRow:
    """One school's figure on one rule (a CSV row; a table row when it misses)."""

    school: SchoolInfo
    rule: str
    value: float | None
    target: float
    met: bool
    state: str
    unit: str  # of value and target; "% classrooms" for a classroom rule


@dataclass(frozen=True)
class TrendPoint:
    """A rule's share in one trend bucket (a day or a week starting ``day``)."""

    day: dt.date
    share_pct: float | None


@dataclass(frozen=True)
class FleetRow:
    """One agent as the report lists it (collector/reports/fleet.py)."""

    school: str
    agent: str
    version: str  # "" for a release before agents reported it
    config_hash: str
    last_ms: int | None  # its newest agent sample; None: never heard
    state: FleetState


@dataclass(frozen=True)
class ReportData:
    """Everything the HTML and CSV show."""

    policy: str
    policy_title: str
    period: Period
    schools: list[SchoolInfo]
    tiers: dict[int | None, int]  # schools per tier (TIER_KEYS)
    summaries: list[RuleSummary]
    rows: list[SchoolRuleRow]
    trend: dict[str, list[TrendPoint]] = field(default_factory=dict)
    generated_ms: int = 0
    percentile: str = "p90"
    document: str = ""  # the source document, as the profile cites it
    status: str | None = None  # work_points, plan, draft_for_comment, news_summary, ...
    fleet: list[FleetRow] = field(default_factory=list)  # every agent, worst state first

    @property
    def misses(self) -> list[SchoolRuleRow]:
        """Rows of schools that miss a rule (or have no data for it)."""
        return [r for r in self.rows if not r.met]

    def summary(self, rule: str) -> RuleSummary | None:
        """The summary of one rule."""
        return next((s for s in self.summaries if s.rule.id == rule), None)
