"""Runs each probe at its interval, in isolation, and puts what it returns into the spool.

``schedule`` decides when a probe is due (interval with random jitter so a thousand agents do
not poll in step); a thread pool runs it, so a slow probe never delays another.  A probe that is
still running when it is due again is skipped (and counted), and one that runs past its timeout
is logged by name.  Its samples still reach the spool when it finishes: they carry their own
timestamps, so nothing is wrong with them.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import schedule

from agent.probes.base import Probe
from agent.spool import Spool, SpoolWriteError
from common.timetable import Timetable
from common.wire import MAX_SAMPLES_PER_BATCH, Sample, WireError, encode_samples

log = logging.getLogger(__name__)


@dataclass
class ScheduledProbe:
    """A probe with its timing."""

    name: str
    probe: Probe
    interval: float
    timeout: float
    jitter: float
    school_hours_only: bool = False
    started: float | None = None  # monotonic start of the current run
    timed_out_logged: bool = False
    future: Future[list[Sample]] | None = field(default=None, repr=False)
    # Clear while a run is under way, set once its samples are spooled (or its error counted).
    idle: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.idle.set()


class ProbeScheduler:
    """Owns the probes, the pool that runs them and the counters of the ``agent`` sample."""

    def __init__(self, probes: list[ScheduledProbe], spool: Spool,
                 timetable: Timetable | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.probes = {p.name: p for p in probes}
        self.spool = spool
        self.timetable = timetable
        self.monotonic = monotonic
        self.now = now
        self.probe_errors = 0
        self.spool_errors = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(probes)),
                                        thread_name_prefix="probe")
        self._schedule = schedule.Scheduler()

    def start(self) -> None:
        """Register every probe with the scheduler; the first runs happen at once."""
        for p in self.probes.values():
            job = self._schedule.every(max(1, round(p.interval - p.jitter)))
            if p.jitter >= 1:
                job = job.to(round(p.interval + p.jitter))
            job.seconds.do(self.submit, p.name)
            self.submit(p.name)

    def tick(self) -> None:
        """Run what is due and check timeouts; call this often."""
        self._schedule.run_pending()
        now = self.monotonic()
        for p in self.probes.values():
            if (p.started is not None and not p.timed_out_logged
                    and now - p.started > p.timeout):
                p.timed_out_logged = True
                with self._lock:
                    self.probe_errors += 1
                log.error("probe %s: still running after its %.0fs timeout", p.name, p.timeout)

    def submit(self, name: str, *, force: bool = False) -> Future[list[Sample]] | None:
        """Start one run of a probe unless it is still running (or outside school hours)."""
        p = self.probes[name]
        if p.future is not None and not p.future.done():
            log.warning("probe %s: previous run not finished, skipping this one", name)
            return None
        if (not force and p.school_hours_only and self.timetable is not None
                and not self.timetable.is_school_time(self.now())):
            return None
        p.started, p.timed_out_logged = self.monotonic(), False
        p.idle.clear()
        # A forced run (agent run --once) uses the probe's collect_now when it has one: the
        # speed test, for one, runs at once instead of waiting for its planned time.
        collect = getattr(p.probe, "collect_now", p.probe.collect) if force else p.probe.collect
        future = self._pool.submit(collect)
        p.future = future
        future.add_done_callback(lambda f: self._finished(p, f))
        return future

    def run_all_once(self, timeout: float) -> bool:
        """Run every probe now and wait for all; True when each finished within ``timeout``."""
        started = [self.probes[name] for name in list(self.probes)
                   if self.submit(name, force=True) is not None]
        deadline = self.monotonic() + timeout
        # Wait for _finished, not just the future: the future is done before its callback has
        # put the samples into the spool.
        return all(p.idle.wait(max(0.0, deadline - self.monotonic())) for p in started)

    def _finished(self, p: ScheduledProbe, future: Future[list[Sample]]) -> None:
        p.started = None
        try:
            if future.cancelled():  # shutdown(cancel_futures=True) before it started
                return
            exc = future.exception()
            if exc is not None:
                with self._lock:
                    self.probe_errors += 1
                log.error("probe %s failed: %s", p.name, exc)
                return
            self.store(p.name, future.result())
        finally:
            p.idle.set()

    def store(self, source: str, samples: list[Sample]) -> None:
        """Spool samples in batches no larger than the wire limit."""
        for i in range(0, len(samples), MAX_SAMPLES_PER_BATCH):
            chunk = samples[i : i + MAX_SAMPLES_PER_BATCH]
            try:
                self.spool.append(encode_samples(chunk), len(chunk))
            except WireError as exc:
                with self._lock:
                    self.probe_errors += 1
                log.error("probe %s produced an invalid sample, batch discarded: %s", source, exc)
            except SpoolWriteError as exc:
                with self._lock:
                    self.spool_errors += 1
                log.error("%s (%d samples of %s lost)", exc, len(chunk), source)

    def shutdown(self) -> None:
        """Stop scheduling; running probes finish in the background."""
        self._schedule.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
