"""Runs each probe at its interval, in isolation, and puts what it returns into the spool.

Each probe's next run is planned on the monotonic clock (interval with random jitter so a
thousand agents do not poll in step), never on the wall clock: NTP stepping the time back or
forward neither pauses nor bursts the probes.  (The ``schedule`` library we used before plans on
``datetime.now()``; a step back of 60 s skipped 60 s of runs.)  The wall clock only decides
calendar questions (school hours) and the samples' timestamps, which are made unique and
increasing per series: a sample stamped at or before the last one of its series (the clock went
back) gets the last timestamp + 1 ms, so it neither overwrites an older point nor goes back.

A thread pool runs the probes, so a slow probe never delays another.  A probe that is
still running when it is due again is skipped (and counted), and one that runs past its timeout
is logged by name.  Its samples still reach the spool when it finishes: they carry their own
timestamps, so nothing is wrong with them.  Samples are spooled in batches within both wire
limits (sample count and payload bytes), so no batch is one the collector must refuse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.probes.base import Probe
from agent.spool import Spool, SpoolWriteError
from common.timetable import Timetable
from common.wire import (
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_BATCH,
    Sample,
    WireError,
    encode_samples,
)

log = logging.getLogger(__name__)

# The envelope around a samples array: ids of up to 64 characters each, seq and sent_ms of up
# to 20 digits, the keys: under 400 bytes; 1 KiB leaves room.
ENVELOPE_HEAD_MAX = 1024
MIN_PERIOD_S = 0.1
# A probe that cuts itself at its timeout still has to close sessions and hand its samples
# over; on a loaded 2-core gateway that takes tens of milliseconds past the deadline. Only a
# run this much later than its timeout is a hang worth an error.
OVERDUE_GRACE_S = 1.0
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


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
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC), *,
                 rng: random.Random | None = None) -> None:
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
        self.rng = rng or random.Random()
        self._next: dict[str, float] = {}  # monotonic time of each probe's next run
        self._last_ts: dict[SeriesKey, int] = {}

    def _period(self, p: ScheduledProbe) -> float:
        return max(MIN_PERIOD_S, p.interval + self.rng.uniform(-p.jitter, p.jitter))

    def start(self) -> None:
        """Plan every probe; the first runs happen at once."""
        now = self.monotonic()
        for p in self.probes.values():
            self._next[p.name] = now + self._period(p)
            self.submit(p.name)

    def tick(self) -> None:
        """Run what is due and check timeouts; call this often."""
        now = self.monotonic()
        for name, planned in list(self._next.items()):
            if now < planned:
                continue
            self.submit(name)
            # From the planned time, so runs do not drift late; from now if the agent was
            # stopped (SIGSTOP, suspend) for longer than a period, so they do not burst.
            after = planned + self._period(self.probes[name])
            self._next[name] = after if after > now else now + self._period(self.probes[name])
        for p in self.probes.values():
            if (p.started is not None and not p.timed_out_logged
                    and now - p.started > p.timeout + OVERDUE_GRACE_S):
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

    def unique_times(self, samples: list[Sample]) -> list[Sample]:
        """Samples with timestamps strictly increasing per series (kind + tags)."""
        out = []
        with self._lock:
            for sample in samples:
                key = (sample.kind, tuple(sorted(sample.tags.items())))
                last = self._last_ts.get(key)
                fixed = (dataclasses.replace(sample, ts_ms=last + 1)
                         if last is not None and sample.ts_ms <= last else sample)
                self._last_ts[key] = fixed.ts_ms
                out.append(fixed)
        return out

    def store(self, source: str, samples: list[Sample]) -> None:
        """Spool samples in batches within the wire limits (samples and bytes)."""
        samples = self.unique_times(samples)
        for i in range(0, len(samples), MAX_SAMPLES_PER_BATCH):
            chunk = samples[i : i + MAX_SAMPLES_PER_BATCH]
            try:
                parts = split_by_bytes(chunk)
            except WireError as exc:
                with self._lock:
                    self.probe_errors += 1
                log.error("probe %s produced an invalid sample, batch discarded: %s", source, exc)
                continue
            for payload, n in parts:
                try:
                    self.spool.append(payload, n)
                except SpoolWriteError as exc:
                    with self._lock:
                        self.spool_errors += 1
                    log.error("%s (%d samples of %s lost)", exc, n, source)

    def shutdown(self) -> None:
        """Stop scheduling; running probes finish in the background."""
        self._next.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


def split_by_bytes(samples: list[Sample]) -> list[tuple[bytes, int]]:
    """Encoded samples arrays, each small enough for an envelope within MAX_PAYLOAD_BYTES."""
    payload = encode_samples(samples)
    if len(payload) + ENVELOPE_HEAD_MAX <= MAX_PAYLOAD_BYTES or len(samples) <= 1:
        # One sample is always small enough: the wire caps its tags, fields and strings.
        return [(payload, len(samples))] if samples else []
    half = len(samples) // 2
    return split_by_bytes(samples[:half]) + split_by_bytes(samples[half:])
