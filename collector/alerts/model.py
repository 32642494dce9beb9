"""What an alert is: a typed condition at one school, with labels and figures for the mail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from collector.alerts.settings import AlertName

Severity = Literal["critical", "error", "warning"]
SEVERITY_RANK: Final[dict[str, int]] = {"critical": 0, "error": 1, "warning": 2}
Figure = float | str


@dataclass(frozen=True)
class AlertKey:
    """Identity of one alert: the same key firing again is the same alert, not a new one."""

    name: AlertName
    school: str
    subject: str = ""  # device, agent or classroom id; empty for school-wide alerts

    @property
    def id(self) -> str:
        """Stable text form, used as the primary key on disk."""
        return f"{self.name}/{self.school}/{self.subject}"


@dataclass(frozen=True)
class Alert:
    """A firing condition as the tracker sees it now."""

    key: AlertKey
    severity: Severity
    district: str
    since_ms: int
    labels: dict[str, str] = field(default_factory=dict)  # device, classroom, agent, role...
    figures: dict[str, Figure] = field(default_factory=dict)

    @property
    def name(self) -> AlertName:
        """The alert's kind."""
        return self.key.name

    @property
    def school(self) -> str:
        """The school it belongs to (its notification group)."""
        return self.key.school


@dataclass
class Evaluation:
    """One look at the tracker: what fires now, and what was seen healthy since the last look.

    An alert that is neither firing nor cleared is unknown (e.g. after a restart, before the
    device reports again): it keeps the state it had, so a restart never sends a false
    "resolved" mail.
    """

    firing: list[Alert]
    cleared: set[AlertKey]


class ClearLog:
    """Keys seen healthy since the last evaluation, kept only where someone cares.

    Healthy evidence is recorded when the entity was bad (a transition) or when its key is
    watched (an alert on disk from before a restart), so a district of healthy devices costs
    nothing here: no key is even built unless its school has a watched alert.
    """

    def __init__(self) -> None:
        self._watched: set[AlertKey] = set()
        self._watched_schools: set[str] = set()
        self._cleared: set[AlertKey] = set()

    def watch(self, keys: set[AlertKey]) -> None:
        """Report healthy evidence for these keys even without a transition."""
        self._watched = keys
        self._watched_schools = {k.school for k in keys}

    def schools(self) -> set[str]:
        """Schools with a watched key."""
        return self._watched_schools

    def clear(self, name: AlertName, school: str, subject: str, was_bad: bool) -> None:
        """Record that the condition ``name`` of ``school``/``subject`` is false now."""
        if not was_bad and school not in self._watched_schools:
            return
        key = AlertKey(name, school, subject)
        if was_bad or key in self._watched:
            self._cleared.add(key)

    def drain(self) -> set[AlertKey]:
        """The keys cleared since the last call."""
        cleared, self._cleared = self._cleared, set()
        return cleared
