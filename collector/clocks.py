"""Agents' clock offsets, estimated from every message, and the correction of their timestamps.

The only clock evidence a collector has is each envelope's ``sent_ms`` (the agent's clock when
it published, or resent, the batch) against the collector's receive time.  ``recv - sent`` is
the offset (collector clock minus agent clock) plus the message's transit, and transit is never
negative: a message that waited in a queue or crossed a slow link has a *larger* delta, never a
smaller one.  So, as NTP does with its delay filter, the minimum delta over a recent window
estimates offset + the least transit, robust to backlogs and slow links.  A backlog sent after
days offline is no exception: its ``sent_ms`` is the resend time.

A correction moves every stored sample of the agent, so it grows only on firm evidence: a new
offset is applied once a message at least ``confirm_after`` later agrees with it (a batch sent
by hand with a made-up ``sent_ms`` never is); it shrinks toward none at once (a smaller delta is
proof).  It changes only when it differs from the applied one by more than ``RESYNC_MS`` (drift
of a few seconds never moves stored data, so a resent batch gets the same timestamps and
overwrites itself).  Correction starts past ``tolerance`` and stops
below half of it, so a clock near the limit does not flap.  Offsets applied are stored as
``agent_clock`` points and read back on start (``restore``): after a restart, the first
messages, a backlog among them, are corrected at once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from collector.config import ClockSettings, Influx1Storage, Influx2Storage
from collector.measurements import AGENT_CLOCK
from collector.storage.lineprotocol import format_line
from common.wire import AgentIdentity, Sample

log = logging.getLogger(__name__)

# A new estimate must differ from the applied offset by this much to replace it.
RESYNC_MS = 10_000
# A later message corroborates an offset when its delta is within this of it.
AGREE_MS = 3_000
# agent_clock points of an agent whose clock is worth watching: at most one a minute.
POINT_EVERY_MS = 60_000
# Entries kept per agent: deltas that only grow (a clock stopped at one instant) would keep
# every message of the window; past this the oldest minimum gives way to the next one.
MAX_WINDOW = 512
# Series remembered per corrected agent for the collision guard (oldest forgotten first).
MAX_SERIES = 4096


@dataclass(frozen=True)
class ClockView:
    """One agent's clock as the collector sees it now (alerts and tests read it)."""

    who: AgentIdentity
    offset_ms: int  # estimate: collector clock minus agent clock (plus the least transit)
    applied_ms: int  # added to the agent's timestamps; 0 while its clock is within tolerance
    applied_since_ms: int | None  # receive time the current correction started
    last_seen_ms: int


class Correction(NamedTuple):
    """Samples with corrected timestamps, and the ``agent_clock`` point to store with them.

    A NamedTuple: made for every message, a frozen dataclass cost twice as much (issue 11).
    """

    samples: list[Sample]
    lines: tuple[str, ...] = ()


_new_tuple = tuple.__new__


@dataclass
class _AgentClock:
    who: AgentIdentity
    # (recv_ms, delta_ms), deltas increasing: the window's minimum is the first entry.
    window: deque[tuple[int, int]] = field(default_factory=deque)
    applied_ms: int = 0
    applied_since_ms: int | None = None
    candidate_ms: int | None = None  # an offset waiting for a later message to agree
    candidate_since_ms: int = 0
    last_seen_ms: int = 0
    last_point_ms: int = 0
    # series -> (last agent ts, last stored ts), only while corrected: the collision guard.
    series: dict[str, tuple[int, int]] = field(default_factory=dict)

    def estimate(self) -> int:
        return self.window[0][1]


class ClockBook:
    """Per-agent offsets; ``correct`` runs in paho's thread, ``snapshot`` in any."""

    def __init__(self, settings: ClockSettings) -> None:
        self.settings = settings
        self._tolerance_ms = int(settings.tolerance * 1000)
        self._window_ms = int(settings.window * 1000)
        self._confirm_ms = int(settings.confirm_after * 1000)
        self._agents: dict[AgentIdentity, _AgentClock] = {}
        self._lock = threading.Lock()

    def restore(self, who: AgentIdentity, applied_ms: int, since_ms: int) -> None:
        """Resume a correction stored before a restart (only for an agent not seen yet)."""
        with self._lock:
            if who not in self._agents and applied_ms != 0:
                self._agents[who] = _AgentClock(who, applied_ms=applied_ms,
                                                applied_since_ms=since_ms)

    def correct(self, who: AgentIdentity, sent_ms: int, recv_ms: int,
                samples: list[Sample]) -> Correction:
        """Note one message's delta and return its samples corrected by the applied offset."""
        with self._lock:
            agent = self._agents.get(who)
            if agent is None:
                agent = self._agents[who] = _AgentClock(who)
            changed = self._observe(agent, recv_ms - sent_ms, recv_ms)
            if agent.applied_ms == 0:
                if not changed and abs(agent.window[0][1]) * 2 < self._tolerance_ms:
                    # A right clock: _point's quiet case, inline; built without the
                    # NamedTuple's Python __new__ (every message).
                    return _new_tuple(Correction, (samples, ()))
                return Correction(samples, self._point(agent, recv_ms, changed))
            return Correction(self._shift(agent, samples), self._point(agent, recv_ms, changed))

    def snapshot(self) -> list[ClockView]:
        """Every agent's clock."""
        with self._lock:
            return [ClockView(a.who, a.estimate() if a.window else a.applied_ms, a.applied_ms,
                              a.applied_since_ms, a.last_seen_ms)
                    for a in self._agents.values()]

    def _observe(self, agent: _AgentClock, delta: int, recv_ms: int) -> bool:
        agent.last_seen_ms = recv_ms
        window = agent.window
        while window and window[-1][1] >= delta:  # never the minimum again
            window.pop()
        window.append((recv_ms, delta))
        while window[0][0] < recv_ms - self._window_ms or len(window) > MAX_WINDOW:
            window.popleft()
        estimate = window[0][1]  # agent.estimate(), without the call (every message)
        applied = agent.applied_ms
        target = estimate
        if abs(estimate) <= self._tolerance_ms and not (
                applied != 0 and abs(estimate) * 2 >= self._tolerance_ms):
            target = 0
        if abs(target - applied) <= RESYNC_MS:
            agent.candidate_ms = None
            return False
        # Toward no correction at once: a smaller delta is proof (transit is never negative)
        # that the applied offset is too large, e.g. NTP got through and set the clock right;
        # waiting would store these samples in the future.
        if abs(target) < abs(agent.applied_ms) and (target == 0 or (target > 0) == (
                agent.applied_ms > 0)):
            self._apply(agent, target, recv_ms)
            return True
        if agent.candidate_ms is None or abs(target - agent.candidate_ms) > AGREE_MS:
            agent.candidate_ms, agent.candidate_since_ms = target, recv_ms
            if self._confirm_ms > 0:
                return False
        # Corroborated: a message confirm_after later whose own delta agrees with the offset
        # (a target of 0 needs no agreement beyond the estimate: the clock is right).
        if recv_ms - agent.candidate_since_ms < self._confirm_ms or (
                target != 0 and abs(delta - target) > AGREE_MS):
            return False
        self._apply(agent, target, recv_ms)
        return True

    def _apply(self, agent: _AgentClock, target: int, recv_ms: int) -> None:
        who = agent.who
        log.warning("agent %s/%s/%s: clock offset %+.1f s; its timestamps are %s",
                    who.district, who.school, who.agent, target / 1000,
                    f"corrected by {target / 1000:+.1f} s" if target else "no longer corrected")
        agent.applied_ms, agent.candidate_ms = target, None
        agent.applied_since_ms = recv_ms if target else None
        if target == 0:
            agent.series.clear()

    def _shift(self, agent: _AgentClock, samples: list[Sample]) -> list[Sample]:
        out: list[Sample] = []
        series = agent.series
        for sample in samples:
            key = sample.kind + "".join(f",{k}={v}" for k, v in sorted(sample.tags.items()))
            ts = sample.ts_ms + agent.applied_ms
            last = series.pop(key, None)
            if last is not None:
                last_agent_ts, last_stored = last
                # A new sample must land after the series' last one: when the applied offset
                # shrank, it could otherwise fall on (and overwrite) a stored point.
                if sample.ts_ms > last_agent_ts and ts <= last_stored:
                    ts = last_stored + 1
                if sample.ts_ms < last_agent_ts:  # an older sample (a resend): keep the newest
                    series[key] = last
            if key not in series:
                series[key] = (sample.ts_ms, ts)
            out.append(dataclasses.replace(sample, ts_ms=ts))
        while len(series) > MAX_SERIES:
            del series[next(iter(series))]
        return out

    def _point(self, agent: _AgentClock, recv_ms: int, changed: bool) -> tuple[str, ...]:
        # Only clocks worth a look are stored: right clocks would add a point per agent and
        # minute for nothing.
        estimate = agent.estimate()
        quiet = agent.applied_ms == 0 and abs(estimate) * 2 < self._tolerance_ms
        if not changed and (quiet or recv_ms - agent.last_point_ms < POINT_EVERY_MS):
            return ()
        ts = max(recv_ms, agent.last_point_ms + 1)  # one point per agent and ms
        agent.last_point_ms = ts
        who = agent.who
        return (format_line(AGENT_CLOCK.name,
                            {"district": who.district, "school": who.school, "agent": who.agent},
                            {"offset_ms": estimate, "applied_ms": agent.applied_ms,
                             "corrected": agent.applied_ms != 0}, ts),)


def restore_clocks(book: ClockBook, storage: Influx1Storage | Influx2Storage,
                   days: int = 30) -> int:
    """Resume the corrections last stored in ``agent_clock``; how many agents were restored.

    Without them a restarted collector would need ``confirm_after`` to trust an offset again,
    and an agent's backlog, delivered in the first seconds, would land at its wrong time.
    Storage that cannot answer (down, or VictoriaMetrics without InfluxQL) only costs that.
    """
    import urllib3

    from collector.reports.query import InfluxReader, QueryError

    if getattr(storage, "server", "influxdb") != "influxdb":
        return 0
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=3.0), retries=False)
    applied = AGENT_CLOCK.field("applied_ms")
    try:
        found = InfluxReader(storage, http).query(
            f'SELECT last("{applied}") AS "applied" FROM "{AGENT_CLOCK.name}" '
            f'WHERE time > now() - {days}d GROUP BY "district", "school", "agent"')
    except (QueryError, OSError, urllib3.exceptions.HTTPError) as exc:
        log.warning("agent clock corrections not restored (%s): re-estimated from new "
                    "messages", exc)
        return 0
    restored = 0
    for series in found:
        for row in series.rows:
            value = row.get("applied")
            if isinstance(value, int | float) and value != 0:
                who = AgentIdentity(series.tags.get("district", ""),
                                    series.tags.get("school", ""), series.tags.get("agent", ""))
                book.restore(who, int(value), int(row["time"]))
                restored += 1
    if restored:
        log.info("agent clock corrections restored for %d agents", restored)
    return restored
