"""The rules engine's state rebuilt from the samples stored in InfluxDB (the store of truth).

A collector that restarts (upgrade, reboot, OOM kill) replays, school by school, what its
windows need: every ``av`` and ``wifi`` sample (the uptime and coverage buckets) and speed test
of the longest window, the newest qualifying ``reach``, ``iface`` and ``netdev_if`` point of each
series (the state keeps only the newest of those), the newest point of every other kind per
agent (when it was last heard) and each agent's newest ``agent_status``. The state's counters
skip what they already counted, so the same samples replayed are the state of a collector that
took them in live, and ``history.py`` replays consecutive ranges to evaluate past days.

With a state snapshot (snapshot.py, an accelerator: the samples stay the truth) only what the
snapshot cannot hold is replayed: the time range of each backlog journalled after it
(collector/late.py), then every sample newer than it less a margin for batches in flight when it
was taken (gap.py). Schools the snapshot lacks get the full replay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from collector.late import LATE_MS
from collector.rules import gap, snapshot
from collector.rules.engine import RulesEngine
from collector.rules.state import READ_FIELDS
from common.kinds import KINDS
from common.wire import AgentIdentity, Sample

log = logging.getLogger(__name__)

_IDENTITY = ("agent", "district", "school")


def _fields(*kinds: str) -> str:
    names = dict.fromkeys(f for k in kinds for f in READ_FIELDS[k])
    return ",".join(f'"{f}"' for f in names) + " FROM " + ",".join(f'"{k}"' for k in kinds)


# Every sample of the window: the state counts them (buckets) or keeps a bounded list.
_WINDOWED = _fields("av", "wifi", "speedtest")
# The newest point per series is all the state keeps of these; the filters are the state's
# own (a down or Wi-Fi link carries no classroom rate, a port is down or has a speed).
_NEWEST = (
    (_fields("reach"), ""),
    (_fields("iface"), ' AND "up" = true AND "role" != \'wlan\''),
    (_fields("netdev_if"), ' AND ("up" = false OR "speed_mbps" >= 0)'),
)
_REPLAYED = frozenset(READ_FIELDS)
_STATUS_MEASUREMENT = "agent_status"  # collector/measurements.py AGENT_STATUS
# A batch received before a snapshot but observed after it was at most this long in the writer
# (the storage timeout is 10 s; snapshot.py skips a snapshot after a failed write): its samples
# are at most INFLIGHT_MS + LATE_MS older than the snapshot, or it is in the journal.
INFLIGHT_MS = 30_000


class Row(Protocol):
    """One series of a query result (collector.reports.query.Series)."""

    name: str
    tags: dict[str, str]
    rows: list[dict[str, Any]]


class StoredSamples(Protocol):
    """InfluxQL over the collector's storage (collector.reports.query.InfluxReader)."""

    def query(self, influxql: str) -> list[Any]: ...


@dataclass
class RestoreStats:
    """What a restore read and how long it took."""

    schools: int = 0
    samples: int = 0
    queries: int = 0
    seconds: float = 0.0


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _samples(series: list[Row]) -> Iterator[tuple[AgentIdentity, Sample]]:
    for s in series:
        who = gap.identity(s.tags)
        if who is None:
            continue
        tags = {k: v for k, v in s.tags.items() if v and k not in _IDENTITY}
        for row in s.rows:
            fields = {k: v for k, v in row.items() if k != "time" and v is not None}
            if fields:
                yield who, Sample(s.name, int(row["time"]), tags, fields)


class Restorer:
    """Replays stored samples into an engine, a group of schools per query."""

    def __init__(self, engine: RulesEngine, source: StoredSamples, *, batch: int = 10,
                 progress_every: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.source = source
        self.batch = batch
        self.progress_every = progress_every
        self._monotonic = monotonic

    def window_start(self, until_ms: int) -> int:
        """Where the longest window ending at ``until_ms`` begins (its oldest bucket's start)."""
        geometry = self.engine.geometry
        longest = geometry.width_ms * (geometry.ring - 1)
        return geometry.first_bucket(until_ms, longest) * geometry.width_ms

    def replay(self, since_ms: int, until_ms: int, schools: list[str] | None = None,
               stats: RestoreStats | None = None) -> RestoreStats:
        """Take in the samples of ``since_ms`` < time <= ``until_ms``, school group by group.

        Raises what the source raises (storage unreachable); ``stats.schools`` then says how
        many schools are done, so a retry can go on from there.
        """
        ids = self.engine.school_ids() if schools is None else schools
        stats = stats or RestoreStats()
        started = self._monotonic()
        logged = started
        while stats.schools < len(ids):
            group = ids[stats.schools:stats.schools + self.batch]
            clause = " OR ".join(f'"school" = {_quote(s)}' for s in group)
            stats.samples += self._replay_where(f"({clause})", since_ms, until_ms, None, stats)
            stats.schools += len(group)
            now = self._monotonic()
            if now - logged >= self.progress_every:
                logged = now
                left = (now - started) / stats.schools * (len(ids) - stats.schools)
                log.info("rules: restoring state from storage: %d/%d schools, %d samples, "
                         "%.0f s (about %.0f s to go)", stats.schools, len(ids), stats.samples,
                         now - started, left)
        stats.seconds += self._monotonic() - started
        return stats

    def query(self, statement: str, stats: RestoreStats) -> list[Row]:
        """One statement, counted."""
        stats.queries += 1
        result: list[Row] = self.source.query(statement)
        return result

    def _replay_where(self, schools: str, since_ms: int, until_ms: int,
                      status_since: int | None, stats: RestoreStats) -> int:
        """Replay one query's worth; ``schools`` is a school filter ('' for all)."""
        span = f"time > {since_ms}ms AND time <= {until_ms}ms"
        where = f"{schools} AND {span}" if schools else span
        items = list(_samples(self.query(f"SELECT {_WINDOWED} WHERE {where} GROUP BY *",
                                          stats)))
        for select, extra in _NEWEST:
            items.extend(_samples(self.query(
                f"SELECT {select} WHERE {where}{extra} GROUP BY * ORDER BY time DESC LIMIT 1",
                stats)))
        # Oldest first across series: a scan's BSSIDs, a device's samples, in time order.
        items.sort(key=lambda item: item[1].ts_ms)
        self.engine.replay(items)
        others = ",".join(f'"{k}"' for k in KINDS if k not in _REPLAYED)
        for s in self.query(f"SELECT * FROM {others} WHERE {where} GROUP BY "
                             '"district","school","agent" ORDER BY time DESC LIMIT 1', stats):
            who = gap.identity(s.tags)
            if who is not None and s.rows:
                self.engine.replay_heard(who, int(s.rows[0]["time"]))
        status_where = " AND ".join(
            c for c in (schools, f"time <= {until_ms}ms",
                        "" if status_since is None else f"time > {status_since}ms") if c)
        for s in self.query(f'SELECT "state" FROM "{_STATUS_MEASUREMENT}" WHERE {status_where} '
                             'GROUP BY "district","school","agent" ORDER BY time DESC LIMIT 1',
                             stats):
            who = gap.identity(s.tags)
            state = s.rows[0].get("state") if s.rows else None
            if who is not None and state in ("online", "offline"):
                self.engine.replay_status(who, str(state), int(s.rows[0]["time"]))
        return len(items)


@dataclass(frozen=True)
class SnapshotSource:
    """Where the state snapshot is and which storage it must belong to (snapshot.py)."""

    path: Path
    store: str


def restore_on_start(engine: RulesEngine, source: StoredSamples, stop: threading.Event, *,
                     retry_every: float = 5.0,
                     snap: SnapshotSource | None = None) -> RestoreStats | None:
    """Rebuild the engine's state for the longest window, retrying while storage is down.

    The engine holds live input meanwhile (``hold_for_restore`` was called before ingest
    started); if more arrives than it holds, what arrived is read back from storage (it was
    stored before it was observed) until the hold suffices. Returns None when stopped first.
    """
    restorer = Restorer(engine, source)
    until = engine.clock()
    since = restorer.window_start(until) - 1  # the oldest bucket whole
    ids = engine.school_ids()
    loaded = snapshot.load(engine, snap.store, snap.path, since) if snap else None
    have = set() if loaded is None else set(loaded.schools)
    full = [s for s in ids if s not in have]
    log.info("rules: restoring the state of %d schools from storage (samples since %s)",
             len(full), time.strftime("%Y-%m-%d %H:%M", time.gmtime(since / 1000)))
    stats = _retrying(lambda st: restorer.replay(since, until, full, st), stop,
                      retry_every=retry_every, total=len(full))
    if stats is not None and loaded is not None:
        more = _after_snapshot(restorer, loaded, until, since, stop, retry_every=retry_every)
        stats = None if more is None else _add(stats, more)
    while stats is not None and (held := engine.finish_restore()) is None:
        since, until = until, engine.clock()
        log.info("rules: more samples arrived than the restore holds; reading them back")
        more = _retrying(lambda st: restorer.replay(since, until, None, st), stop,  # noqa: B023
                         retry_every=retry_every, total=len(ids))
        stats = None if more is None else _add(stats, more)
    if stats is None:
        return None
    stats.schools = len(ids)
    log.info("rules: state restored: %d schools, %d samples in %.1f s (%d queries); %d samples "
             "that arrived meanwhile taken in", stats.schools, stats.samples, stats.seconds,
             stats.queries, held)
    return stats


def _after_snapshot(restorer: Restorer, loaded: snapshot.Loaded, until: int, oldest: int,
                    stop: threading.Event, *, retry_every: float) -> RestoreStats | None:
    """The backlogs journalled after the snapshot, then every sample newer than it."""
    gap_from = max(oldest, loaded.taken_ms - INFLIGHT_MS - LATE_MS)
    log.info("rules: state snapshot of %s loaded for %d schools; reading back the %.0f s "
             "after it", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(loaded.taken_ms / 1000)),
             len(loaded.schools), (until - gap_from) / 1000)
    have = set(loaded.schools)
    journal = _retrying(lambda st: _journal(restorer, loaded.taken_ms - INFLIGHT_MS, until,
                                            oldest, st, have=have), stop,
                        retry_every=retry_every, total=len(have))
    if journal is None:
        return None

    def recent(stats: RestoreStats) -> RestoreStats:
        started = time.monotonic()
        stats.samples += gap.replay_range(restorer.engine, lambda q: restorer.query(q, stats),
                                          gap_from, until)
        stats.seconds += time.monotonic() - started
        return stats

    more = _retrying(recent, stop, retry_every=retry_every, total=len(have))
    return None if more is None else _add(journal, more)


def _journal(restorer: Restorer, since: int, until: int, oldest: int, stats: RestoreStats, *,
             have: set[str]) -> RestoreStats:
    """Replay each school's backlog range (before the gap: a live engine took it in so)."""
    found = gap.journal(lambda q: restorer.query(q, stats), since, until, oldest)
    ranges = {k: v for k, v in found.items() if k in have}
    if ranges:
        log.info("rules: %d schools had a backlog stored after the snapshot; replaying it",
                 len(ranges))
    for school, (lo, hi) in list(ranges.items())[stats.schools:]:
        more = restorer.replay(lo - 1, hi, [school], RestoreStats())
        stats.samples, stats.queries = stats.samples + more.samples, stats.queries + more.queries
        stats.schools += 1
    return stats


def _add(stats: RestoreStats, more: RestoreStats) -> RestoreStats:
    stats.samples += more.samples
    stats.queries += more.queries
    stats.seconds += more.seconds
    return stats


def _retrying(step: Callable[[RestoreStats], RestoreStats], stop: threading.Event, *,
              retry_every: float, total: int) -> RestoreStats | None:
    stats = RestoreStats()
    while True:
        try:
            return step(stats)
        except Exception as exc:  # storage down or refusing: say so, keep ingesting, retry
            log.warning("rules: restore paused at %d/%d schools: %s; retrying in %.0f s "
                        "(ingest continues; no compliance pass until restored)",
                        stats.schools, total, exc, retry_every)
            if stop.wait(retry_every):
                return None


def start_restore(engine: RulesEngine, source: StoredSamples, stop: threading.Event, *,
                  snap: SnapshotSource | None = None) -> threading.Thread:
    """hold_for_restore, then restore_on_start in a daemon thread named 'rules-restore'."""
    engine.hold_for_restore()
    thread = threading.Thread(target=restore_on_start, args=(engine, source, stop),
                              kwargs={"snap": snap}, name="rules-restore", daemon=True)
    thread.start()
    return thread
