"""A local file of the rules engine's state: an accelerator for restore.py, never the truth.

Every ``rules.snapshot_every`` (and on a clean shutdown) the collector copies each school's
state (school by school, under the engine lock for one school at a time) and writes it
atomically (tmp file, fsync, rename; mode 0600). At start restore.py loads it and replays from
InfluxDB only what it cannot hold: the samples after it and the late arrivals stored after it
(collector/late.py). A file that does not fit this engine (other format, bucket geometry,
state settings or storage; corrupt, truncated, older than the longest window, from the future)
is ignored with one log line, and a school whose inventory entry changed or is new is left
out: those get the full replay from InfluxDB.

The body is ``marshal`` of plain tuples (ints, floats, strings, the counters' raw bytes),
zlib-compressed: a province of 10,000 schools loads and dumps in seconds (docs/benchmarks.md),
and a CRC over it catches a damaged file before it is read.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import marshal
import os
import threading
import weakref
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from collector.rules.engine import RulesEngine
from collector.rules.state import DeviceState, PathEvidence, RoomWifi, SchoolState
from collector.rules.window import RingCounter
from collector.storage import StorageHealth

log = logging.getLogger(__name__)

FORMAT = 1
_MAGIC = b"schoolmon-rules-snapshot\n"
# A snapshot this far ahead of the clock is from a clock that was wrong (or another host's).
FUTURE_SLACK_MS = 60_000

Record = tuple[Any, ...]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def engine_fingerprint(engine: RulesEngine, store: str) -> str:
    """What every school's state depends on besides its own inventory entry."""
    s = engine.settings
    g = engine.geometry
    return _digest(str(FORMAT), str(marshal.version), store, f"{g.width_ms}/{g.ring}",
                   repr(s.wifi_rssi_dbm), repr(s.max_speedtests), repr(s.max_devices_per_school),
                   repr(sorted(s.internet_speedtest_servers)),
                   s.default_timetable.model_dump_json())


_FINGERPRINTS: weakref.WeakKeyDictionary[SchoolState, str] = weakref.WeakKeyDictionary()


def school_fingerprint(state: SchoolState) -> str:
    """One school's inventory entry (its devices, classrooms, timetable): changed -> replayed."""
    found = _FINGERPRINTS.get(state)
    if found is None:  # an engine's inventory never changes: once per school, not per snapshot
        found = _FINGERPRINTS[state] = _digest(state.school.model_dump_json())
    return found


def _counter(c: RingCounter) -> tuple[int, bytes]:
    return c.head, c.counts.tobytes()


def _set_counter(c: RingCounter, head: int, raw: bytes) -> None:
    counts = array("I")
    counts.frombytes(raw)
    if len(counts) != len(c.counts):
        raise ValueError("counter of another ring length")
    c.head, c.counts = head, counts


def record(state: SchoolState) -> Record:
    """A copy of one school's state as plain values (called under the engine lock)."""
    return (
        school_fingerprint(state),
        list(state.speedtests),
        [(k, d.classroom, d.type, d.up, d.last_ms, *_counter(d.counter))
         for k, d in state.devices.items()],
        [(k, r.last_ms, r.best, r.counted, r.hit, *_counter(r.counter))
         for k, r in state.wifi.items()],
        (state.internet.ms, state.internet.up), (state.edu.ms, state.edu.up),
        [(k, ts, up) for k, (ts, up) in state.targets.items()],
        [(k, ts, mbps) for k, (ts, mbps) in state.links.items()],
        [(dev, ifname, ts, speed) for (dev, ifname), (ts, speed) in state.backbone.items()],
        [(k, a.classroom, a.last_ms, a.status, a.status_ms) for k, a in state.agents.items()],
        state.last_seen_ms,
    )


def install(state: SchoolState, rec: Record) -> None:
    """Put a record back into a fresh school state (called under the engine lock)."""
    (_fp, speedtests, devices, wifi, internet, edu, targets, links, backbone, agents,
     last_seen) = rec
    ring = state.limits.geometry.ring
    state.speedtests.clear()
    state.speedtests.extend(tuple(t) for t in speedtests)
    for key, classroom, type_, up, last_ms, head, raw in devices:
        dev = state.devices.get(key) or DeviceState(classroom, type_, ring)
        dev.up, dev.last_ms = up, last_ms
        _set_counter(dev.counter, head, raw)
        state.devices[key] = dev
    for key, last_ms, best, counted, hit, head, raw in wifi:
        room = RoomWifi(ring)
        room.last_ms, room.best, room.counted, room.hit = last_ms, best, counted, hit
        _set_counter(room.counter, head, raw)
        state.wifi[key] = room
    for evidence, (ms, up) in ((state.internet, internet), (state.edu, edu)):
        assert isinstance(evidence, PathEvidence)
        evidence.ms, evidence.up = ms, up
    state.targets = {k: (ts, up) for k, ts, up in targets}
    state.links = {k: (ts, mbps) for k, ts, mbps in links}
    state.backbone = {(dev, ifname): (ts, speed) for dev, ifname, ts, speed in backbone}
    for key, classroom, last_ms, status, status_ms in agents:
        agent = state.agent(key, classroom)
        agent.last_ms, agent.status, agent.status_ms = last_ms, status, status_ms
    state.last_seen_ms = last_seen


@dataclass
class Loaded:
    """A snapshot that fits the engine: when it was taken and the schools it restored."""

    taken_ms: int
    schools: list[str]


def dump(engine: RulesEngine, store: str, path: Path) -> tuple[int, int]:
    """Write the engine's state to ``path`` atomically; returns (time taken, bytes)."""
    taken = engine.clock()
    # zlib level 1: a province's 170 MB of mostly repeated counters is ~13 MB, for ~1 s of CPU
    # a minute (and the disk is not written 10 GB an hour).
    body = zlib.compress(marshal.dumps(
        [(sid, engine.read_state(sid, record)) for sid in engine.school_ids()]), 1)
    head = orjson.dumps({"format": FORMAT, "marshal": marshal.version,
                         "engine": engine_fingerprint(engine, store), "taken_ms": taken,
                         "bytes": len(body), "crc32": zlib.crc32(body)})
    # Per process: a standby taking over on this host may write while the old active stops.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(_MAGIC + head + b"\n")
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return taken, len(_MAGIC) + len(head) + 1 + len(body)


def load(engine: RulesEngine, store: str, path: Path, oldest_ms: int) -> Loaded | None:
    """Install a fitting snapshot into the (fresh) engine; None, with one log line, if none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        log.info("rules: no state snapshot at %s: full restore from storage", path)
        return None
    except OSError as exc:
        log.warning("rules: state snapshot %s unreadable (%s): full restore from storage",
                    path, exc)
        return None
    why, records, taken = _check(engine, store, data, oldest_ms)
    if why:
        log.warning("rules: state snapshot %s ignored (%s): full restore from storage", path,
                    why)
        return None
    mine: dict[str, Record] = dict(records)
    done = []
    for sid in engine.school_ids():
        found = mine.get(sid)
        if found is not None and found[0] == engine.read_state(sid, school_fingerprint):
            engine.write_state(sid, functools.partial(install, rec=found))
            done.append(sid)
    return Loaded(taken, done)


def _check(engine: RulesEngine, store: str, data: bytes,
           oldest_ms: int) -> tuple[str, list[tuple[str, Record]], int]:
    """(why it does not fit or '', its records, its time)."""
    if not data.startswith(_MAGIC):
        return "not a rules state snapshot", [], 0
    head_end = data.find(b"\n", len(_MAGIC))
    try:
        head = orjson.loads(data[len(_MAGIC):head_end])
    except orjson.JSONDecodeError:
        return "damaged header", [], 0
    body = data[head_end + 1:]
    taken = int(head.get("taken_ms", 0))
    if head.get("format") != FORMAT or head.get("marshal") != marshal.version:
        return f"format {head.get('format')}, not {FORMAT}", [], 0
    if head.get("engine") != engine_fingerprint(engine, store):
        return "other bucket geometry, state settings or storage", [], 0
    if len(body) != head.get("bytes") or zlib.crc32(body) != head.get("crc32"):
        return "truncated or damaged", [], 0
    if taken < oldest_ms:
        return "older than the longest window", [], 0
    if taken > engine.clock() + FUTURE_SLACK_MS:
        return "taken in the future (a clock moved back?)", [], 0
    try:
        records = marshal.loads(zlib.decompress(body))
    except (EOFError, ValueError, TypeError, zlib.error):
        return "damaged body", [], 0
    return "", records, taken


def storage_settled(health: Callable[[], StorageHealth]) -> Callable[[], bool]:
    """True when no storage write failed since the last call (and none is failing now)."""
    seen = [health().failures_total]

    def settled() -> bool:
        now = health()
        quiet = not now.failing and now.failures_total == seen[0]
        seen[0] = now.failures_total
        return quiet

    return settled


class Snapshotter:
    """Writes the snapshot every ``every`` seconds in a thread, and once more on close()."""

    def __init__(self, engine: RulesEngine, store: str, path: Path, every: float, *,
                 settled: Callable[[], bool] = lambda: True) -> None:
        self.engine, self.store, self.path, self.every = engine, store, path, every
        # False while storage writes fail: a batch still being retried is neither in the
        # snapshot nor (by its time) in the gap a restore reads back, so wait for the next one.
        self.settled = settled
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="rules-snapshot", daemon=True)
        self.written = 0

    def start(self) -> None:
        """Start the periodic writes."""
        self._thread.start()

    def write(self) -> bool:
        """One snapshot now, if the state is restored and storage settled; logs a failure once."""
        if not self.engine.ready.is_set() or not self.settled():
            return False
        try:
            taken, size = dump(self.engine, self.store, self.path)
        except OSError as exc:
            if not self._failing:
                log.warning("rules: cannot write the state snapshot %s: %s (restarts will "
                            "replay the whole window from storage)", self.path, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("rules: state snapshot %s written again", self.path)
        self._failing = False
        self.written += 1
        log.debug("rules: state snapshot at %d: %d bytes", taken, size)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.write()
            except Exception:  # a bug here must not end the snapshots (or the collector)
                log.exception("rules: state snapshot failed")

    def close(self) -> None:
        """Stop the thread and write a last snapshot (clean shutdown: nothing to replay)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self.write()
