"""The rules engine the collector runs: sample and status observers, a periodic pass, status."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from collector.inventory import Inventory, Network, School, load_inventory
from collector.rules.evaluate import BoundRule, ShareTally, bind_rules, school_results
from collector.rules.metrics import MetricContext
from collector.rules.policy import PolicyProfile, load_policies
from collector.rules.results import (
    ComplianceResult,
    SchoolStatus,
    compliance_lines,
    status_lines,
)
from collector.rules.scope import applicable_rules, check_zones
from collector.rules.settings import RulesSettings
from collector.rules.state import SchoolState, StateLimits
from collector.rules.status import school_status
from collector.rules.window import BucketGeometry
from common.timetable import SchoolHours
from common.wire import AgentIdentity, Sample

log = logging.getLogger(__name__)

WritePoints = Callable[[list[str]], bool]
T = TypeVar("T")
# Live samples held while a restore runs (~0.5 KB each); beyond, they are read back from storage.
_MAX_HELD_SAMPLES = 1_000_000


def wall_clock_ms() -> int:
    """Now, in ms since the epoch."""
    return int(time.time() * 1000)


class RulesEngine:
    """Per-school streaming state for an inventory, checked against policy profiles."""

    def __init__(self, inventory: Inventory, policies: list[PolicyProfile],
                 settings: RulesSettings | None = None, *,
                 clock: Callable[[], int] = wall_clock_ms, origin: str = "inventory") -> None:
        self.settings = settings or RulesSettings()
        self.policies = policies
        self.clock = clock
        self.rules: list[BoundRule] = bind_rules(policies, self.settings)
        longest = max([int(self.settings.window * 1000)] + [b.window_ms for b in self.rules])
        self.geometry = BucketGeometry.for_window(longest, self.settings.buckets)
        limits = StateLimits(self.geometry, self.settings.wifi_rssi_dbm,
                             self.settings.max_speedtests, self.settings.max_devices_per_school,
                             tuple(self.settings.internet_speedtest_servers))
        self._lock = threading.Lock()
        self._schools: dict[str, SchoolState] = {}
        self._rules_of: dict[str, list[tuple[int, BoundRule]]] = {}
        self._agent_rooms = {a.id: a.classroom for a in inventory.agents}
        # The one school-hours resolver (common/timetable.py), as the alerts and agents use.
        hours = SchoolHours(self.settings.default_timetable)
        for school in inventory.schools:
            self._schools[school.id] = SchoolState(school, hours.calendar(school), limits)
        self._rules_of = applicable_rules(inventory, self.rules, origin)
        # Network nodes keep the same per-node state (their switch ports, reach targets); they
        # are evaluated only on network rules and are not schools (no school_status point).
        self._networks: dict[str, Network] = {n.id: n for n in inventory.networks}
        for net in inventory.networks:
            stand_in = School(id=net.id, name=net.name, district=net.district,
                              category="urban", classes=1)
            self._schools[net.id] = SchoolState(
                stand_in, hours.calendar(None), limits)
        for agent in inventory.agents:
            self._schools[agent.school].agent(agent.id, agent.classroom)
        self.observed_samples = 0  # of inventory schools
        self.unknown_school_samples = 0
        self._unknown_logged: set[str] = set()
        # The periodic pass's "now" (tests and replays fix it; ingest keeps ``clock``).
        self.pass_clock = clock
        # While the state is restored from storage (restore.py), live batches and statuses wait
        # here, so a replayed older sample is never refused as older than a live one.
        self.ready = threading.Event()
        self.ready.set()
        self._held: list[tuple[AgentIdentity, list[Sample] | tuple[str, int], int]] = []
        self._held_samples = 0
        self.max_held = _MAX_HELD_SAMPLES
        self._overflowed = False

    # --- observers (collector writer thread / paho thread) ---------------------------------

    def observe(self, who: AgentIdentity, samples: list[Sample]) -> None:
        """SampleObserver: take in one stored batch of an agent."""
        received = self.clock()
        with self._lock:
            if not self.ready.is_set():
                self._hold(who, samples, received)
                return
            state = self._school(who)
            if state is None:
                self.unknown_school_samples += len(samples)
                return
            agent = state.agent(who.agent, self._agent_rooms.get(who.agent))
            state.add(agent, samples, received)
            self.observed_samples += len(samples)

    def observe_status(self, who: AgentIdentity, status: str, ts_ms: int) -> None:
        """StatusObserver: an agent's retained online/offline status."""
        with self._lock:
            if not self.ready.is_set():
                self._hold(who, (status, ts_ms), ts_ms)
                return
            state = self._school(who)
            if state is None:
                return
            agent = state.agent(who.agent, self._agent_rooms.get(who.agent))
            agent.status, agent.status_ms = status, ts_ms

    # --- restore (restore.py replays stored samples through these) ---------------------------

    def hold_for_restore(self) -> None:
        """Hold live input until finish_restore(); passes wait for it too."""
        with self._lock:
            self.ready.clear()

    def _hold(self, who: AgentIdentity, item: list[Sample] | tuple[str, int],
              received: int) -> None:
        if isinstance(item, list):
            if self._overflowed:
                return
            if self._held_samples + len(item) > self.max_held:
                # Observers run after storage: what is let go here is read back (take_overflow).
                self._overflowed = True
                self._held = [h for h in self._held if not isinstance(h[1], list)]
                self._held_samples = 0
                return
            self._held_samples += len(item)
        self._held.append((who, item, received))

    def school_ids(self) -> list[str]:
        """Every school and network node the engine keeps state for, inventory order."""
        return list(self._schools)

    def read_state(self, school_id: str, read: Callable[[SchoolState], T]) -> T:
        """``read`` of one school's state under the lock (snapshot.py copies it)."""
        with self._lock:
            return read(self._schools[school_id])

    def write_state(self, school_id: str, write: Callable[[SchoolState], None]) -> None:
        """``write`` on one school's state under the lock (snapshot.py restores it)."""
        with self._lock:
            write(self._schools[school_id])

    def replay(self, items: list[tuple[AgentIdentity, Sample]]) -> None:
        """Stored samples, oldest first: taken in as if they had arrived when they were taken."""
        with self._lock:
            for who, sample in items:
                state = self._schools.get(who.school)
                if state is not None:
                    agent = state.agent(who.agent, self._agent_rooms.get(who.agent))
                    state.add(agent, [sample], sample.ts_ms)

    def replay_heard(self, who: AgentIdentity, ts_ms: int) -> None:
        """A stored sample of a kind the rules do not read: the agent was heard then."""
        with self._lock:
            state = self._schools.get(who.school)
            if state is not None:
                agent = state.agent(who.agent, self._agent_rooms.get(who.agent))
                agent.last_ms = max(agent.last_ms or 0, ts_ms)
                state.last_seen_ms = max(state.last_seen_ms or 0, ts_ms)

    def replay_status(self, who: AgentIdentity, status: str, ts_ms: int) -> None:
        """A stored agent_status point; an older one than the state's is ignored."""
        with self._lock:
            state = self._schools.get(who.school)
            if state is not None:
                agent = state.agent(who.agent, self._agent_rooms.get(who.agent))
                if agent.status_ms is None or ts_ms >= agent.status_ms:
                    agent.status, agent.status_ms = status, ts_ms

    def finish_restore(self) -> int | None:
        """Take in what was held, in arrival order; returns the held samples taken in.

        None: more arrived than the hold keeps; read back what arrived since the restore's
        end from storage, then call again.

        A held status that repeats the restored one is the broker's retained copy, re-sent on
        subscribe: news to this process, not to the state, so it keeps the stored time.
        """
        with self._lock:
            if self._overflowed:
                self._overflowed = False
                return None
            held, self._held, self._held_samples = self._held, [], 0
            taken = 0
            for who, item, received in held:
                state = self._schools.get(who.school)
                if state is None:
                    self.unknown_school_samples += len(item) if isinstance(item, list) else 0
                    continue
                agent = state.agent(who.agent, self._agent_rooms.get(who.agent))
                if isinstance(item, list):
                    state.add(agent, item, received)
                    taken += len(item)
                elif item[0] != agent.status:
                    agent.status, agent.status_ms = item
            self.observed_samples += taken
            self.ready.set()
        return taken

    def _school(self, who: AgentIdentity) -> SchoolState | None:
        state = self._schools.get(who.school)
        if state is None and who.school not in self._unknown_logged:
            self._unknown_logged.add(who.school)
            log.warning("rules: school %s (agent %s) is not in the inventory; its samples are "
                        "stored but not checked", who.school, who.agent)
        return state

    # --- evaluation --------------------------------------------------------------------------

    def evaluate(self, now_ms: int | None = None) -> list[ComplianceResult]:
        """Check every rule against every school it applies to; district shares last."""
        now = self.clock() if now_ms is None else now_ms
        tally = ShareTally()
        results: list[ComplianceResult] = []
        for school_id, state in self._schools.items():
            rules = self._rules_of[school_id]
            if not rules:
                continue
            with self._lock:  # per school: the writer thread waits at most one school
                ctx = MetricContext(state, self.settings, now)
                results.extend(school_results(ctx, state.school.district, rules, tally,
                                              self._networks.get(school_id)))
        results.extend(tally.results())
        return results

    def school_status(self, school_id: str, now_ms: int | None = None) -> SchoolStatus | None:
        """What the engine knows about one school now; None if it is not in the inventory."""
        state = self._schools.get(school_id)
        if state is None or school_id in self._networks:
            return None
        now = self.clock() if now_ms is None else now_ms
        with self._lock:
            return school_status(MetricContext(state, self.settings, now))

    def statuses(self, now_ms: int | None = None, detail: bool = True) -> list[SchoolStatus]:
        """The status of every inventory school, in inventory order (see school_status)."""
        now = self.clock() if now_ms is None else now_ms
        out = []
        for school_id, state in self._schools.items():
            if school_id in self._networks:
                continue
            with self._lock:
                out.append(school_status(MetricContext(state, self.settings, now), detail))
        return out

    def school(self, school_id: str) -> School | None:
        """The inventory entry of a school."""
        state = self._schools.get(school_id)
        return state.school if state and school_id not in self._networks else None

    def pass_lines(self, now_ms: int | None = None) -> list[str]:
        """One evaluation pass as line-protocol points (compliance, and school_status)."""
        now = self.clock() if now_ms is None else now_ms
        lines = compliance_lines(self.evaluate(now), now)
        if self.settings.write_status:
            lines.extend(status_lines(self.statuses(now, detail=False), now))
        return lines

    def run_periodic(self, write_points: WritePoints, stop: threading.Event,
                     interval: float | None = None) -> None:
        """Evaluate and write every ``interval`` seconds (rules.interval) until ``stop``."""
        every = self.settings.interval if interval is None else interval
        while not self.ready.wait(1.0):  # no pass on a half-restored state
            if stop.is_set():
                return
        while not stop.wait(every):
            started = time.monotonic()
            try:
                lines = self.pass_lines(self.pass_clock())
            except Exception:  # a bug in one pass must not end the collector's rules for good
                log.exception("rules evaluation failed")
                continue
            if lines and not write_points(lines):
                return  # stopping
            log.info("rules: %d points in %.1f s", len(lines), time.monotonic() - started)

    def start_periodic(self, write_points: WritePoints, stop: threading.Event) -> threading.Thread:
        """run_periodic in a daemon thread named 'rules'."""
        thread = threading.Thread(target=self.run_periodic, args=(write_points, stop),
                                  name="rules", daemon=True)
        thread.start()
        return thread


def build_rules_engine(settings: RulesSettings, inventory: str | None, policies: list[str],
                       config_path: str | Path, *,
                       clock: Callable[[], int] = wall_clock_ms) -> RulesEngine | None:
    """The engine collector.yaml asks for (None: rules off, or no inventory or policies).

    Relative inventory and policy paths are taken from the directory of ``config_path``;
    problems raise ConfigError ('file: path.to.key: why').
    """
    if not settings.enabled or not inventory or not policies:
        return None
    base = Path(config_path).parent
    inventory_path = base / inventory
    inv = load_inventory(inventory_path)
    profiles = load_policies(policies, base, origin=str(config_path))
    check_zones(inv, str(inventory_path))
    return RulesEngine(inv, profiles, settings, clock=clock, origin=str(inventory_path))
