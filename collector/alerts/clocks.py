"""Agent clock condition: the collector corrects an agent's timestamps (collector/clocks.py)."""

from __future__ import annotations

from collections.abc import Callable

from collector.alerts.model import Alert, AlertKey, ClearLog
from collector.alerts.schooltime import Directory
from collector.clocks import ClockView


class ClockWatch:
    """Fires ``agent_clock_wrong`` while an agent's clock is off by more than the tolerance.

    It reads the collector's clock book (``ClockBook.snapshot``), which already applies the
    tolerance, its hysteresis and the confirmation: the alert fires exactly while the samples
    of that agent are being moved, so an admin learns which PC needs its clock (or NTP through
    the school firewall) fixed.
    """

    def __init__(self, directory: Directory, clears: ClearLog) -> None:
        self.directory = directory
        self.clears = clears
        self.source: Callable[[], list[ClockView]] | None = None
        self._firing: set[AlertKey] = set()

    def evaluate(self) -> list[Alert]:
        """An alert per agent whose timestamps are corrected; healthy evidence for the rest."""
        if self.source is None:
            return []
        alerts: list[Alert] = []
        firing: set[AlertKey] = set()
        for view in self.source():
            who = view.who
            key = AlertKey("agent_clock_wrong", who.school, who.agent)
            if view.applied_ms == 0 or view.applied_since_ms is None:
                self.clears.clear(key.name, who.school, who.agent, key in self._firing)
                continue
            firing.add(key)
            # The agent's clock minus the true time: negative when it is slow.
            figures: dict[str, float | str] = {
                "clock_offset_min": round(-view.offset_ms / 60_000, 1)}
            alerts.append(Alert(key, "warning", who.district, view.applied_since_ms,
                                {"agent": who.agent, "role": self.directory.agent_role(who.agent)},
                                figures))
        self._firing = firing
        return alerts
