"""Agent conditions: offline (last will, or silent in school hours) and spool dropping data."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from collector.alerts.model import Alert, AlertKey, ClearLog
from collector.alerts.schooltime import Directory
from collector.alerts.settings import AlertRulesSettings
from common.wire import AgentIdentity, Sample


@dataclass(slots=True)
class _Agent:
    who: AgentIdentity
    role: str
    last_data_ms: int | None = None
    offline_status_ms: int | None = None  # the last will (or a clean "offline"), when it came
    offline_since_ms: int | None = None  # firing since; sticky until the agent is back
    reason: str = ""
    last_dropped: float | None = None
    drops: deque[tuple[int, float]] = field(default_factory=deque)  # (arrival ms, increase)
    drop_since_ms: int | None = None


class AgentWatch:
    """Tracks every agent that reported or is listed in the inventory."""

    def __init__(self, rules: AlertRulesSettings, directory: Directory, clears: ClearLog,
                 started_ms: int) -> None:
        self.rules = rules
        self.directory = directory
        self.clears = clears
        # Agents that never reported since this start are silent from here, not from 1970.
        self.started_ms = started_ms
        # When the collector hears from nobody at all, the fault is on its side (broker link,
        # its own network): silence then says nothing about any one school.
        self.last_any_data_ms = started_ms
        self._agents: dict[str, _Agent] = {}
        for info in directory.agents():
            who = AgentIdentity(info.district, info.school, info.id)
            self._agents[info.id] = _Agent(who, info.role)

    def _get(self, who: AgentIdentity) -> _Agent:
        agent = self._agents.get(who.agent)
        if agent is None or agent.who != who:
            agent = _Agent(who, self.directory.agent_role(who.agent))
            self._agents[who.agent] = agent
        return agent

    def on_data(self, who: AgentIdentity, arrival_ms: int) -> None:
        """A message arrived: the agent is alive."""
        agent = self._get(who)
        agent.last_data_ms = arrival_ms
        self.last_any_data_ms = max(self.last_any_data_ms, arrival_ms)
        # Only "online" ends a last will: a batch stored after the will may have been sent
        # before the connection died (the writer thread lags the status by a flush or more).
        if agent.offline_status_ms is None and (
                agent.offline_since_ms is not None or who.school in self.clears.schools()):
            self._back(agent)

    def on_agent_sample(self, who: AgentIdentity, sample: Sample, arrival_ms: int) -> None:
        """The agent's own health sample: its spool's dropped_total."""
        value = sample.number("dropped_total")
        if value is not None:
            self._dropped(self._get(who), value, arrival_ms)

    def on_status(self, who: AgentIdentity, status: str, ts_ms: int) -> None:
        """The retained status: "offline" is the last will (or a clean shutdown)."""
        agent = self._get(who)
        if status == "offline":
            agent.offline_status_ms = ts_ms
        else:
            agent.offline_status_ms = None
            self._back(agent)

    def _back(self, agent: _Agent) -> None:
        self.clears.clear("agent_offline", agent.who.school, agent.who.agent,
                          agent.offline_since_ms is not None)
        agent.offline_since_ms = None

    def _dropped(self, agent: _Agent, value: float, arrival_ms: int) -> None:
        previous, agent.last_dropped = agent.last_dropped, value
        if previous is not None and value > previous:
            agent.drops.append((arrival_ms, value - previous))
            if agent.drop_since_ms is None:
                agent.drop_since_ms = arrival_ms
        # A lower value is a new spool file: it becomes the new baseline, nothing was lost.

    def evaluate(self, now_ms: int) -> list[Alert]:
        """The agents offline or dropping now."""
        alerts: list[Alert] = []
        periods: dict[int, int | None] = {}  # per calendar: schools share timetables
        for agent in self._agents.values():
            offline = self._offline(agent, now_ms, periods)
            if offline is not None:
                alerts.append(offline)
            dropping = self._dropping(agent, now_ms)
            if dropping is not None:
                alerts.append(dropping)
        return alerts

    def _offline(self, agent: _Agent, now_ms: int,
                 periods: dict[int, int | None]) -> Alert | None:
        offline_after_ms = self.rules.offline_after * 1000
        if agent.offline_since_ms is None:
            calendar = self.directory.school(agent.who.school, agent.who.district).calendar
            if id(calendar) not in periods:
                periods[id(calendar)] = calendar.period_start_ms(now_ms)
            period = periods[id(calendar)]
            any_time = agent.role in self.rules.offline_any_time_roles
            status_ms = agent.offline_status_ms
            if status_ms is not None and (any_time or (calendar.is_school_time(status_ms)
                                                       and period is not None)):
                agent.offline_since_ms, agent.reason = status_ms, "last_will"
            elif period is not None and now_ms - self.last_any_data_ms < offline_after_ms:
                silent_from = max(agent.last_data_ms or self.started_ms, period)
                if now_ms - silent_from >= offline_after_ms:
                    agent.offline_since_ms = agent.last_data_ms or silent_from
                    agent.reason = "no_data"
        if agent.offline_since_ms is None:
            return None
        figures: dict[str, float | str] = {"reason": agent.reason}
        if agent.last_data_ms is not None:
            figures["last_data_ms"] = float(agent.last_data_ms)
        labels = {"agent": agent.who.agent, "role": agent.role}
        return Alert(AlertKey("agent_offline", agent.who.school, agent.who.agent),
                     "critical" if agent.role == "gateway" else "warning",
                     agent.who.district, agent.offline_since_ms, labels, figures)

    def _dropping(self, agent: _Agent, now_ms: int) -> Alert | None:
        window_ms = self.rules.spool_drop_window * 1000
        while agent.drops and now_ms - agent.drops[0][0] > window_ms:
            agent.drops.popleft()
        if not agent.drops:
            if agent.last_dropped is not None:  # a counter we can compare: healthy evidence
                self.clears.clear("spool_dropping", agent.who.school, agent.who.agent,
                                  agent.drop_since_ms is not None)
            agent.drop_since_ms = None
            return None
        key = AlertKey("spool_dropping", agent.who.school, agent.who.agent)
        since = agent.drop_since_ms if agent.drop_since_ms is not None else agent.drops[0][0]
        figures: dict[str, float | str] = {
            "dropped": sum(n for _, n in agent.drops),
            "dropped_total": agent.last_dropped or 0.0,
        }
        return Alert(key, "error", agent.who.district, since,
                     {"agent": agent.who.agent, "role": agent.role}, figures)
