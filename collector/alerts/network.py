"""School network conditions: internet down, and access bandwidth below the category target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from collector.alerts.model import Alert, AlertKey, ClearLog
from collector.alerts.schooltime import Directory
from collector.alerts.settings import AlertRulesSettings
from common.vocab import UPLINK_ROLES, WAN
from common.wire import AgentIdentity, Sample

# A reach target or WAN interface not reported for this long was removed from the agent's
# config: it must not keep the school "up" (or "down") forever.
STALE_MS: Final = 3600 * 1000


@dataclass(slots=True)
class _Uplink:
    district: str
    targets: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)
    wans: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)
    down_since_ms: int | None = None


@dataclass(slots=True)
class _Bandwidth:
    district: str
    low_count: int = 0
    low_since_ms: int = 0
    last_mbps: float = 0.0
    firing: bool = False


def _all_down(entries: dict[tuple[str, str], tuple[int, bool]]) -> list[str]:
    """Names of the entries, when every fresh one is down; else an empty list."""
    if not entries:
        return []
    newest = max(ts for ts, _ in entries.values())
    fresh = {name: up for name, (ts, up) in entries.items() if newest - ts <= STALE_MS}
    return [] if any(fresh.values()) else sorted(name for _, name in fresh)


class NetworkWatch:
    """Per school: reach targets toward the internet/district, WAN links, speed tests."""

    def __init__(self, rules: AlertRulesSettings, directory: Directory,
                 clears: ClearLog) -> None:
        self.rules = rules
        self.directory = directory
        self.clears = clears
        self._uplinks: dict[str, _Uplink] = {}
        self._bandwidth: dict[str, _Bandwidth] = {}

    def on_sample(self, who: AgentIdentity, sample: Sample) -> None:
        """Feed one reach, iface or speedtest sample."""
        if sample.kind == "speedtest":
            self._speedtest(who, sample)
            return
        up = sample.flag("up")
        if up is None:
            return
        if sample.kind == "reach" and sample.tags.get("target_role") in UPLINK_ROLES:
            name = sample.tags.get("target", "?")
            self._uplink(who, "targets", (who.agent, name), sample.ts_ms, up)
        elif sample.kind == "iface" and sample.tags.get("role") == WAN:
            name = sample.tags.get("iface", "?")
            self._uplink(who, "wans", (who.agent, name), sample.ts_ms, up)

    def _uplink(self, who: AgentIdentity, which: str, name: tuple[str, str], ts_ms: int,
                up: bool) -> None:
        state = self._uplinks.setdefault(who.school, _Uplink(who.district))
        entries: dict[tuple[str, str], tuple[int, bool]] = getattr(state, which)
        previous = entries.get(name)
        if previous is not None and previous[0] > ts_ms:
            return  # an older sample from a spool backlog: the newer one stands
        entries[name] = (ts_ms, up)
        down = bool(_all_down(state.targets) or _all_down(state.wans))
        if down and state.down_since_ms is None:
            state.down_since_ms = ts_ms
        elif not down:
            self.clears.clear("internet_down", who.school, "",
                              state.down_since_ms is not None)
            state.down_since_ms = None

    def _speedtest(self, who: AgentIdentity, sample: Sample) -> None:
        mbps = sample.number("down_mbps")
        if mbps is None:
            return
        school = self.directory.school(who.school, who.district)
        target = self.rules.bandwidth_target_mbps.for_category(school.category)
        state = self._bandwidth.setdefault(who.school, _Bandwidth(who.district))
        state.last_mbps = float(mbps)
        if mbps >= target:
            self.clears.clear("bandwidth_low", who.school, "", state.firing)
            state.low_count, state.firing = 0, False
            return
        state.low_count += 1
        if state.low_count == 1:
            state.low_since_ms = sample.ts_ms
        if state.low_count >= self.rules.bandwidth_consecutive_tests:
            state.firing = True

    def evaluate(self) -> list[Alert]:
        """Schools whose uplink is down or whose bandwidth is low, now."""
        alerts: list[Alert] = []
        for school, up in self._uplinks.items():
            if up.down_since_ms is None:
                continue
            figures: dict[str, float | str] = {}
            if targets := _all_down(up.targets):
                figures["targets_down"] = ", ".join(targets)
            if wans := _all_down(up.wans):
                figures["wan_down"] = ", ".join(wans)
            alerts.append(Alert(AlertKey("internet_down", school), "critical", up.district,
                                up.down_since_ms, {}, figures))
        for school, bw in self._bandwidth.items():
            if not bw.firing:
                continue
            info = self.directory.school(school, bw.district)
            target = self.rules.bandwidth_target_mbps.for_category(info.category)
            alerts.append(Alert(
                AlertKey("bandwidth_low", school), "warning", bw.district, bw.low_since_ms,
                {"category": info.category},
                {"down_mbps": bw.last_mbps, "target_mbps": target,
                 "tests_below": float(bw.low_count)}))
        return alerts
