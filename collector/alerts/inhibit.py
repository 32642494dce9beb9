"""Inhibition: a firing cause (uplink down, gateway offline) mutes its effects at the school."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collector.alerts.model import Alert, AlertKey
from collector.alerts.settings import InhibitRule, parse_matcher


@dataclass(frozen=True)
class _Rule:
    source: frozenset[str]
    source_match: tuple[tuple[str, bool, str], ...]
    target: frozenset[str]
    target_match: tuple[tuple[str, bool, str], ...]


def _matches(alert: Alert, matchers: tuple[tuple[str, bool, str], ...]) -> bool:
    return all((alert.labels.get(label, "") == value) == equal
               for label, equal, value in matchers)


class Inhibitor:
    """Decides which alerts of a school are muted by other alerts of the same school."""

    def __init__(self, rules: list[InhibitRule]) -> None:
        self._rules = [
            _Rule(frozenset(r.source), tuple(parse_matcher(m) for m in r.source_match),
                  frozenset(r.target), tuple(parse_matcher(m) for m in r.target_match))
            for r in rules
        ]

    def muted(self, alerts: Iterable[Alert]) -> set[AlertKey]:
        """Keys of the alerts (all of one school, all firing) that another alert mutes."""
        firing = list(alerts)
        muted: set[AlertKey] = set()
        for rule in self._rules:
            sources = [a for a in firing
                       if a.name in rule.source and _matches(a, rule.source_match)]
            if not sources:
                continue
            for alert in firing:
                if (alert.name in rule.target and _matches(alert, rule.target_match)
                        and any(s.key != alert.key for s in sources)):
                    muted.add(alert.key)
        return muted
