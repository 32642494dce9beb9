"""Rules state restore from a snapshot at province scale (part 3 of bench/rules_restore.py).

An engine of ``--full`` schools filled with a week (bench/rules_eval.py's ``fill``) is the live
collector. Its ingest around the snapshot is real: every school's 5-minute round (gateway reach,
each classroom PC's link and 3-BSSID Wi-Fi scan, every device checked; each school at its own
offset in the 5 minutes, as agents are) written to InfluxDB 1.x for the ``margin`` before the
snapshot and the ``gap`` after it. The live engine observes the samples up to the snapshot,
the snapshot is written (timed, sized), the live engine observes the gap (the collector then
dies: the worst case, just before its next snapshot). A fresh engine is then restored from the
file and InfluxDB (``restore_on_start``: load, journal, the samples after the snapshot less the
in-flight margin), timed, its pass compared with the live engine's and one pass timed beside.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.rules_eval import DAY, HOUR, MINUTE, NOW, fill
from collector.config import Influx1Storage
from collector.inventory import Inventory, School
from collector.late import LATE_MS
from collector.reports.query import InfluxReader
from collector.rules import RulesEngine, RulesSettings, load_policies
from collector.rules.restore import INFLIGHT_MS, SnapshotSource, restore_on_start
from collector.rules.snapshot import dump
from collector.storage.lineprotocol import sample_line
from common.wire import AgentIdentity, Sample

STEP = 5 * MINUTE
# Monday 10:00 (school hours: the counters count): bench/rules_eval.py's NOW is 18:00.
SNAPSHOT_AT = NOW - 8 * HOUR


def rounds(school: School, lo: int, hi: int,
           rng: random.Random) -> Iterator[tuple[AgentIdentity, list[Sample]]]:
    """The school's batches of lo < ts <= hi: one round per agent every 5 minutes."""
    offset = (int(school.id[1:]) * 7919) % STEP  # agents are not in step
    gw = AgentIdentity(school.district, school.id, f"{school.id}-gw")
    first = lo - (lo - offset) % STEP + STEP
    for ts in range(first, hi + 1, STEP):
        if ts <= lo:
            continue
        yield gw, [Sample("reach", ts, {"target": "internet", "target_role": "internet",
                                        "method": "tcp"}, {"up": rng.random() > 0.01})]
        yield gw, [Sample("av", ts, {"device": d.id, "classroom": d.classroom,
                                     "device_type": d.type}, {"online": rng.random() < 0.9})
                   for d in school.devices]
        for room in school.classrooms:
            if not room.ordinary:
                continue
            pc = AgentIdentity(school.district, school.id, f"{school.id}-pc{room.id[1:]}")
            yield pc, [Sample("iface", ts, {"iface": "eth0", "role": "lan"},
                              {"link_mbps": 1000.0, "up": True}),
                       *(Sample("wifi", ts, {"classroom": room.id, "ssid": "S",
                                             "bssid": f"00:00:00:00:00:0{b}"},
                                {"rssi_dbm": rng.uniform(-80, -50)}) for b in range(3))]


class Clock:
    """The live engine's clock, moved by the bench."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        """Now."""
        return self.now


def snapshot_restore(inv: Inventory, profiles: list[str], url: str, db: str, *, gap_s: int,
                     post: Any) -> dict[str, float]:
    """Fill, snapshot, gap, restore; figures."""
    clock = Clock(SNAPSHOT_AT)
    live = RulesEngine(inv, load_policies(profiles), RulesSettings(), clock=clock)
    fill(live, inv, random.Random(42))
    rng = random.Random(11)
    margin = INFLIGHT_MS + LATE_MS
    before = [b for s in inv.schools for b in rounds(s, SNAPSHOT_AT - margin, SNAPSHOT_AT, rng)]
    end = SNAPSHOT_AT + gap_s * 1000
    after = [b for s in inv.schools for b in rounds(s, SNAPSHOT_AT, end, rng)]
    stored = 0
    begun = time.perf_counter()
    for batches in (before, after):
        lines = [sample_line(s, who) for who, samples in batches for s in samples]
        for i in range(0, len(lines), 50_000):
            post(url, db, lines[i:i + 50_000])
        stored += len(lines)
    store_s = time.perf_counter() - begun
    for who, samples in sorted(before, key=lambda b: b[1][0].ts_ms):
        live.observe(who, samples)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rules.snapshot"
        store = f"{url}|{db}"
        begun, cpu = time.perf_counter(), time.process_time()
        dump(live, store, path)
        dump_s, dump_cpu = time.perf_counter() - begun, time.process_time() - cpu
        size = path.stat().st_size
        clock.now = end
        for who, samples in sorted(after, key=lambda b: b[1][0].ts_ms):
            live.observe(who, samples)
        restored = RulesEngine(inv, load_policies(profiles), RulesSettings(), clock=clock)
        restored.hold_for_restore()
        reader = InfluxReader(Influx1Storage(kind="influxdb1", url=url, database=db,
                                             timeout=300.0))
        begun = time.perf_counter()
        stats = restore_on_start(restored, reader, threading.Event(),
                                 snap=SnapshotSource(path, store))
        restore_s = time.perf_counter() - begun
    assert stats is not None
    begun = time.perf_counter()
    got = restored.evaluate(end)
    pass_s = time.perf_counter() - begun
    same = got == live.evaluate(end)
    return {"gap_s": gap_s, "stored": stored, "store_s": store_s, "dump_s": dump_s,
            "dump_cpu": dump_cpu, "bytes": size, "restore_s": restore_s,
            "replayed": stats.samples, "queries": stats.queries, "pass_s": pass_s,
            "same": float(same), "load": os.getloadavg()[0]}


def rows(m: dict[str, float], full: int, every_s: float) -> list[str]:
    """The table rows of part 3."""
    return [
        f"| **snapshot + gap, {full:,} schools** ({m['gap_s']:.0f} s after the snapshot, "
        f"{(INFLIGHT_MS + LATE_MS) / 1000:.0f} s margin before it) | {m['replayed']:,.0f} | "
        f"**{m['restore_s']:.1f} s** ({m['queries']:.0f} queries) | "
        f"{m['replayed'] / m['restore_s']:,.0f}/s | "
        f"{'equal' if m['same'] else 'DIFFERENT'} |",
        f"| snapshot write, {full:,} schools (every {every_s:.0f} s) | "
        f"{m['bytes'] / 1e6:,.0f} MB | {m['dump_s']:.1f} s (CPU {m['dump_cpu']:.1f} s: "
        f"{100 * m['dump_cpu'] / every_s:.0f} % of one core per interval) | | |",
    ]


__all__ = ["DAY", "rows", "snapshot_restore"]
