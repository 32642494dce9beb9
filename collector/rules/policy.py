"""Policy profiles: declarative rules (metric, comparator, threshold, scope, window, statistic).

A profile is a YAML file in ``configs/policies/`` (or anywhere, given by path); the format and
every metric are documented in docs/policies.md.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, model_validator

from collector.inventory import COMPULSORY, NetworkLevel, Region, School, SchoolLevel
from collector.rules.settings import Statistic
from common.config import ConfigError, Duration, Strict, load_model

# The shipped profiles: configs/policies of the source tree, or where an installed wheel puts
# them (pyproject data-files: share/schoolmon/policies).
BUILTIN_DIR: Final = Path(__file__).resolve().parents[2] / "configs" / "policies"
INSTALLED_DIR: Final = Path(sys.prefix) / "share" / "schoolmon" / "policies"

Metric = Literal[
    "access_mbps", "access_up_mbps", "per_class_mbps", "per_student_mbps", "isp_ratio",
    "internet_up", "class_link_mbps", "backbone_mbps", "multimedia_ratio",
    "multimedia_uptime", "all_classrooms_equipped", "wifi_coverage", "wifi_good_pct",
    "agent_fresh", "edu_network_up", "targets_up", "egress_mbps", "district_link_mbps",
    "backbone_link_mbps",
]
# What kind of document a profile quotes: its targets bind differently (docs/policies.md).
DocumentStatus = Literal["work_points", "plan", "draft_for_comment", "news_summary", "standard",
                         "operational"]
Comparator = Literal[">=", ">", "<=", "<", "=="]
RuleScope = Literal["school", "classroom", "district_share"]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]

COMPARATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class MetricSpec:
    """What a metric allows: scopes, whether it takes a statistic, its default window."""

    scopes: frozenset[str]
    statistic: bool  # takes ``statistic`` (a value over several samples)
    rate: bool  # a bandwidth compared with a nominal rate: tolerance applies
    default_window: Literal["window", "recent", "stale_after"]
    unit: str


_SCHOOL = frozenset({"school", "district_share"})
_ALL = frozenset({"school", "classroom", "district_share"})
_ROOM = frozenset({"classroom", "district_share"})

# The fixed set of metrics; definitions in docs/policies.md, computation in metrics.py.
METRICS: Final[dict[str, MetricSpec]] = {
    "access_mbps": MetricSpec(_SCHOOL, True, True, "window", "Mbit/s"),
    "access_up_mbps": MetricSpec(_SCHOOL, True, True, "window", "Mbit/s"),
    "per_class_mbps": MetricSpec(_SCHOOL, True, True, "window", "Mbit/s"),
    "per_student_mbps": MetricSpec(_SCHOOL, True, True, "window", "Mbit/s"),
    "isp_ratio": MetricSpec(_SCHOOL, True, False, "window", "%"),
    "internet_up": MetricSpec(_SCHOOL, False, False, "recent", "0/1"),
    "class_link_mbps": MetricSpec(_ALL, False, False, "window", "Mbit/s"),
    "backbone_mbps": MetricSpec(_SCHOOL, False, False, "window", "Mbit/s"),
    "multimedia_ratio": MetricSpec(_SCHOOL, False, False, "window", "%"),
    "multimedia_uptime": MetricSpec(_ROOM, False, False, "window", "%"),
    "all_classrooms_equipped": MetricSpec(_SCHOOL, False, False, "window", "0/1"),
    "wifi_coverage": MetricSpec(_SCHOOL, False, False, "window", "%"),
    "wifi_good_pct": MetricSpec(_ROOM, False, False, "window", "%"),
    "agent_fresh": MetricSpec(_SCHOOL, False, False, "stale_after", "%"),
    "edu_network_up": MetricSpec(_SCHOOL, False, False, "recent", "0/1"),
    "targets_up": MetricSpec(_SCHOOL, False, False, "recent", "%"),
    # Of a network node (applies_to.network), from the ports its inventory entry names.
    "egress_mbps": MetricSpec(_SCHOOL, False, False, "window", "Mbit/s"),
    "district_link_mbps": MetricSpec(_SCHOOL, False, False, "window", "Mbit/s"),
    "backbone_link_mbps": MetricSpec(_SCHOOL, False, False, "window", "Mbit/s"),
}
NETWORK_METRICS: Final = frozenset({"egress_mbps", "district_link_mbps", "backbone_link_mbps"})


@dataclass(frozen=True)
class SchoolFacts:
    """What ``applies_to`` looks at, resolved from the inventory (None: the inventory is silent)."""

    category: str
    ownership: str
    level: str
    levels: frozenset[str] | None
    region: str | None
    qualified: bool
    demonstration: bool

    @classmethod
    def of(cls, school: School, region: str | None) -> SchoolFacts:
        """The facts of an inventory school; ``region`` is its own or its district's."""
        levels = frozenset(school.levels) if school.levels is not None else (
            frozenset({"primary"}) if school.level == "primary" else None)
        return cls(school.category, school.ownership, school.level, levels, region,
                   school.qualified, school.demonstration)


class Condition(Strict):
    """Which schools a rule is for: every listed attribute must match; unset ones match all."""

    category: list[Literal["urban", "rural", "teaching_point"]] = []
    ownership: list[Literal["public", "private"]] = []
    level: list[Literal["primary", "secondary", "combined"]] = []
    levels: list[SchoolLevel] = []  # teaches at least one of these
    compulsory: bool | None = None  # teaches compulsory education (义务教育: primary, junior)
    region: list[Region] = []  # 东部 / 中部 / 西部
    qualified: bool | None = None  # 有条件的 / 具备条件的
    demonstration: bool | None = None  # a listed demonstration school (示范学校)

    def matches(self, f: SchoolFacts) -> bool:
        """True when the school is in every listed set (missing facts were refused before)."""
        checks = (
            not self.category or f.category in self.category,
            not self.ownership or f.ownership in self.ownership,
            not self.level or f.level in self.level,
            not self.levels or bool(f.levels and f.levels & set(self.levels)),
            self.compulsory is None or bool(f.levels and f.levels & COMPULSORY) == self.compulsory,
            not self.region or f.region in self.region,
            self.qualified is None or f.qualified == self.qualified,
            self.demonstration is None or f.demonstration == self.demonstration,
        )
        return all(checks)

    def missing(self, f: SchoolFacts) -> list[str]:
        """The inventory attributes this condition needs and the school lacks."""
        out = []
        if (self.levels or self.compulsory is not None) and f.levels is None:
            out.append("levels")
        if self.region and f.region is None:
            out.append("region")
        return out


class AppliesTo(Condition):
    """A Condition, or any of several (``any_of``), or network nodes.

    ``network`` makes the rule one of a network node (city / district / province network of the
    inventory's ``networks:``), evaluated on that node's own samples and never on a school.
    """

    any_of: list[Condition] = []
    network: list[NetworkLevel] = []

    @model_validator(mode="after")
    def _one_kind(self) -> AppliesTo:
        school_filters = self.model_dump(exclude={"any_of", "network"}, exclude_defaults=True)
        if self.network and (school_filters or self.any_of):
            raise ValueError("network: a network-node rule takes no school attributes")
        return self

    def matches(self, f: SchoolFacts) -> bool:
        """True for a school the rule applies to (never for a network-node rule)."""
        if self.network:
            return False
        return super().matches(f) and (not self.any_of or any(c.matches(f) for c in self.any_of))

    def missing(self, f: SchoolFacts) -> list[str]:
        """Attributes needed (by this condition or any of ``any_of``) that the school lacks."""
        out = super().missing(f)
        for c in self.any_of:
            out.extend(m for m in c.missing(f) if m not in out)
        return out


class Rule(Strict):
    """One measurable target: ``metric comparator threshold`` per school / classroom."""

    id: Name
    title: str | None = None
    metric: Metric
    comparator: Comparator = ">="
    threshold: float
    scope: RuleScope = "school"
    share_target: float | None = Field(default=None, ge=0, le=100)
    window: Duration | None = None
    statistic: Statistic | None = None
    tolerance_pct: float | None = Field(default=None, ge=0, lt=50)
    applies_to: AppliesTo = AppliesTo()
    targets: list[str] = []  # targets_up: the reach targets (``target`` tag) that must be up
    deadline: int | None = Field(default=None, ge=1990, le=2100)  # the year the text sets
    basically: bool = False  # "基本": the text sets no exact share; reported against 100 %
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        spec = METRICS[self.metric]
        if self.scope not in spec.scopes:
            raise ValueError(f"scope: metric {self.metric} works with scope "
                             f"{' or '.join(sorted(spec.scopes))}, not {self.scope}")
        if (self.scope == "district_share") != (self.share_target is not None):
            raise ValueError("share_target: needed with scope district_share, and only there")
        if self.statistic is not None and not spec.statistic:
            raise ValueError(f"statistic: metric {self.metric} takes no statistic")
        if self.tolerance_pct is not None and not spec.rate:
            raise ValueError(f"tolerance_pct: only for bandwidth metrics, not {self.metric}")
        if (self.metric == "targets_up") != bool(self.targets):
            raise ValueError("targets: needed with metric targets_up, and only there")
        if (self.metric in NETWORK_METRICS) != bool(self.applies_to.network):
            raise ValueError(f"applies_to.network: metric {self.metric} is "
                             f"{'' if self.metric in NETWORK_METRICS else 'not '}a network "
                             "node's; network rules use egress_mbps, district_link_mbps or "
                             "backbone_link_mbps")
        return self

    @property
    def per_classroom(self) -> bool:
        """Evaluated per classroom (scope classroom, or a district share of classrooms)."""
        return self.scope == "classroom" or (
            self.scope == "district_share" and "classroom" in METRICS[self.metric].scopes)


class PolicyProfile(Strict):
    """One policy document's targets."""

    name: Name
    title: str = Field(min_length=1)
    document: str = Field(min_length=1)  # the source document, as it is cited
    url: str | None = None
    seed: str | None = None  # file of the original text in the shared seeds/
    # work_points (年度工作要点), plan (规划), draft_for_comment (征求意见稿), news_summary (a
    # news site's account of the document), standard, operational (ours, not a document's)
    status: DocumentStatus | None = None
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> PolicyProfile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rules: duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self


def resolve_policy(ref: str, base_dir: Path | None = None) -> Path | None:
    """The file of a policy given by name (``cn-moe-2017``) or path; None if not found."""
    base = base_dir or Path.cwd()
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        path = Path(ref) if Path(ref).is_absolute() else base / ref
        return path if path.is_file() else None
    for directory in (base / "policies", BUILTIN_DIR, INSTALLED_DIR):
        for suffix in (".yaml", ".yml"):
            if (candidate := directory / f"{ref}{suffix}").is_file():
                return candidate
    return None


def load_policy(ref: str, base_dir: Path | None = None, origin: str = "policies") -> PolicyProfile:
    """Load one profile by name or path; raises ConfigError ('file: path.to.key: why')."""
    path = resolve_policy(ref, base_dir)
    if path is None:
        raise ConfigError([f"{origin}: no policy {ref!r} (looked for a file, then "
                           f"policies/{ref}.yaml beside the config, then {BUILTIN_DIR} and "
                           f"{INSTALLED_DIR})"])
    profile = load_model(PolicyProfile, path)
    if "/" not in ref and not ref.endswith((".yaml", ".yml")) and profile.name != ref:
        raise ConfigError([f"{path}: name: {profile.name!r} differs from the file name {ref!r}"])
    return profile


def load_policies(refs: list[str], base_dir: Path | None = None,
                  origin: str = "collector.yaml") -> list[PolicyProfile]:
    """Load every profile of ``policies:``; all problems in one ConfigError."""
    problems: list[str] = []
    profiles: list[PolicyProfile] = []
    for i, ref in enumerate(refs):
        try:
            profile = load_policy(ref, base_dir, origin=f"{origin}: policies.{i}")
        except ConfigError as exc:
            problems.extend(exc.lines)
            continue
        if any(p.name == profile.name for p in profiles):
            problems.append(f"{origin}: policies.{i}: policy {profile.name!r} listed twice")
            continue
        profiles.append(profile)
    if problems:
        raise ConfigError(problems)
    return profiles
