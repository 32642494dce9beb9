"""Rules applied to metric values: per-school and per-classroom results, district shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.inventory import Network
from collector.rules.metrics import MetricContext
from collector.rules.network import network_value
from collector.rules.policy import METRICS, NETWORK_METRICS, PolicyProfile, Rule
from collector.rules.results import ComplianceResult, Scope
from collector.rules.settings import RulesSettings
from common.figures import meets, quotient


@dataclass(frozen=True)
class BoundRule:
    """A rule of a profile with its window, statistic and effective threshold resolved."""

    policy: str
    rule: Rule
    window_ms: int
    statistic: str | None
    tolerance_pct: float  # rate tolerance: 0 unless a bandwidth compared with >= or >

    def met(self, value: float) -> bool:
        """The rule's condition on ``value``, compared in exact decimal (common/figures.py)."""
        return meets(value, self.rule.threshold, self.tolerance_pct, self.rule.comparator)


def bind_rules(policies: list[PolicyProfile], settings: RulesSettings) -> list[BoundRule]:
    """Every rule of every profile, with defaults filled in."""
    defaults = {"window": settings.window, "recent": settings.recent,
                "stale_after": settings.stale_after}
    bound = []
    for profile in policies:
        for rule in profile.rules:
            spec = METRICS[rule.metric]
            window = rule.window if rule.window is not None else defaults[spec.default_window]
            stat = (rule.statistic or settings.percentile) if spec.statistic else None
            tol = 0.0
            if spec.rate and rule.comparator in (">=", ">"):
                tol = (settings.rate_tolerance_pct if rule.tolerance_pct is None
                       else rule.tolerance_pct)
            bound.append(BoundRule(profile.name, rule, int(window * 1000), stat, tol))
    return bound


@dataclass
class ShareTally:
    """District-share counts (schools, or classrooms) evaluated so far in a pass."""

    counts: dict[tuple[int, str], list[int]] = field(default_factory=dict)  # with data, met, none
    rules: dict[int, BoundRule] = field(default_factory=dict)

    def add(self, index: int, bound: BoundRule, district: str,
            counts: tuple[int, int, int]) -> None:
        """Count one school's (or its classrooms') (with data, met, without data)."""
        self.rules[index] = bound
        entry = self.counts.get((index, district))
        if entry is None:
            entry = self.counts[(index, district)] = [0, 0, 0]
        entry[0] += counts[0]
        entry[1] += counts[1]
        entry[2] += counts[2]

    def results(self) -> list[ComplianceResult]:
        """One result per rule and district."""
        out = []
        for (index, district), (with_data, met, none) in sorted(self.counts.items()):
            b = self.rules[index]
            target = float(b.rule.share_target or 0.0)
            share = quotient(met, with_data, 100) if with_data else None
            out.append(ComplianceResult(
                b.policy, b.rule.id, b.rule.metric, "district_share", district, None, None,
                share, target, ">=", share is not None and meets(share, target),
                "ok" if share is not None else "no_data",
                "classrooms" if b.rule.per_classroom else "schools", with_data, met, none))
        return out


def school_results(ctx: MetricContext, district: str, rules: list[tuple[int, BoundRule]],
                   tally: ShareTally, network: Network | None = None) -> list[ComplianceResult]:
    """Results of the rules that apply to one school or network node (shares to ``tally``)."""
    school_id = ctx.state.school.id
    out: list[ComplianceResult] = []
    for index, b in rules:
        rule = b.rule
        share = rule.scope == "district_share"
        if rule.per_classroom:
            with_data = met = no_data = 0
            for room, value in ctx.room_values(rule.metric, b.window_ms).items():
                result = _result(b, "classroom", (district, school_id, room), value)
                out.append(result)
                if value is None:
                    no_data += 1
                else:
                    with_data += 1
                    met += result.met
            if share:
                tally.add(index, b, district, (with_data, met, no_data))
            continue
        value = _value(ctx, b, network)
        result = _result(b, "school", (district, school_id, None), value)
        out.append(result)
        if share:
            tally.add(index, b, district, (value is not None, result.met, value is None))
    return out


def _value(ctx: MetricContext, b: BoundRule, network: Network | None) -> float | None:
    rule = b.rule
    if rule.metric == "targets_up":
        return ctx.targets_up(rule.targets, b.window_ms)
    if rule.metric in NETWORK_METRICS:
        return (None if network is None else
                network_value(network, ctx.state, rule.metric, ctx.now_ms - b.window_ms))
    return ctx.value(rule.metric, b.window_ms, b.statistic)


def _result(b: BoundRule, scope: Scope, place: tuple[str, str, str | None],
            value: float | None) -> ComplianceResult:
    rule = b.rule
    district, school, room = place
    if value is None:
        return ComplianceResult(b.policy, rule.id, rule.metric, scope, district, school, room,
                                None, rule.threshold, rule.comparator, False, "no_data")
    return ComplianceResult(b.policy, rule.id, rule.metric, scope, district, school, room,
                            value, rule.threshold, rule.comparator, b.met(value))
