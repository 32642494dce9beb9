"""The observer of samples and statuses: feeds every condition, evaluates them on each tick."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from collector.alerts.agents import AgentWatch
from collector.alerts.classroom import ClassroomWatch
from collector.alerts.clocks import ClockWatch
from collector.alerts.model import AlertKey, ClearLog, Evaluation
from collector.alerts.network import NetworkWatch
from collector.alerts.schooltime import Directory
from collector.alerts.settings import AlertRulesSettings
from collector.alerts.storage import StorageWatch
from collector.clocks import ClockView
from collector.storage import StorageHealth
from common.wire import AgentIdentity, Sample


class ConditionTracker:
    """Per-school condition state from the sample stream (not thread-safe: the engine locks)."""

    def __init__(self, rules: AlertRulesSettings, directory: Directory, started_ms: int) -> None:
        self.rules = rules
        self.clears = ClearLog()
        self.agents = AgentWatch(rules, directory, self.clears, started_ms)
        self.network = NetworkWatch(rules, directory, self.clears)
        self.classrooms = ClassroomWatch(rules, directory, self.clears)
        self.storage = StorageWatch(rules, self.clears)
        self.clocks = ClockWatch(directory, self.clears)
        self._ssids = frozenset(rules.school_ssids)

    def observe(self, who: AgentIdentity, samples: list[Sample], arrival_ms: int) -> None:
        """Samples of one message, already stored."""
        self.agents.on_data(who, arrival_ms)
        scans: dict[tuple[str, int], list[Sample]] = defaultdict(list)
        # A spool sends each probe's samples in time order; each watch ignores a sample older
        # than the last one it has of the same device, room or target.
        for sample in samples:
            kind = sample.kind
            if kind == "agent":
                self.agents.on_agent_sample(who, sample, arrival_ms)
            elif kind == "av":
                self.classrooms.on_av(who, sample)
            elif kind in ("reach", "iface", "speedtest"):
                self.network.on_sample(who, sample)
            elif kind == "wifi" and (not self._ssids or sample.tags.get("ssid") in self._ssids):
                scans[(sample.tags.get("classroom", "?"), sample.ts_ms)].append(sample)
        for (classroom, ts_ms), scan in scans.items():  # insertion order is time order
            self.classrooms.on_wifi_scan(who, classroom, ts_ms, scan)

    def observe_status(self, who: AgentIdentity, status: str, ts_ms: int) -> None:
        """An agent's retained status ("online" / "offline")."""
        self.agents.on_status(who, status, ts_ms)

    def watch_storage(self, health: Callable[[], StorageHealth]) -> None:
        """Read the collector's storage health (``ResilientWriter.health``) on each evaluation."""
        self.storage.source = health

    def watch_clocks(self, clocks: Callable[[], list[ClockView]]) -> None:
        """Read the collector's agent clocks (``Collector.clocks.snapshot``) on each evaluation."""
        self.clocks.source = clocks

    def watch(self, keys: set[AlertKey]) -> None:
        """Alerts on disk: report healthy evidence for these even without a transition."""
        self.clears.watch(keys)

    def evaluate(self, now_ms: int) -> Evaluation:
        """What fires now (enabled alerts only) and what was seen healthy since last time."""
        firing = [*self.agents.evaluate(now_ms), *self.network.evaluate(),
                  *self.classrooms.evaluate(), *self.storage.evaluate(now_ms),
                  *self.clocks.evaluate()]
        enabled = set(self.rules.enabled)
        return Evaluation([a for a in firing if a.name in enabled], self.clears.drain())
