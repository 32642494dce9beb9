"""Rules state restore (issue 10): rebuilding the engine's week from InfluxDB at collector start.

Three parts. The first two are the full replay (no snapshot: a fresh host, a standby on another
host), measured separately because a week of a province does not fit in the time a benchmark
has on this machine; the third is the restart with a state snapshot (bench/rules_snapshot.py):

1. *Real fill*: ``--schools`` schools x ``--classrooms`` classrooms (bench/rules_eval.py's
   inventory) with a school week (Mon-Fri) written to InfluxDB 1.x as line protocol: every
   device checked and every classroom's Wi-Fi scanned (3 BSSIDs) every 5 minutes in school
   hours, the gateway's reach every 5 minutes day and night, each classroom PC's link every
   5 minutes in school hours, 4 speed tests a day. Then ``Restorer.replay`` over the longest
   window into a fresh engine, timed as a whole and split into InfluxDB queries (request, JSON)
   and replay into the state; its pass is checked equal to an engine fed the same samples live.
2. *In memory at scale*: the same week of samples of ``--memory-schools`` schools replayed
   straight into an engine of ``--full`` schools (no InfluxDB), and one evaluation pass of
   that engine, to extrapolate the replay part to the full province.
3. *Snapshot plus gap at scale*: ``--full`` schools, a snapshot and ``--gap`` seconds of the
   province's ingest after it in InfluxDB (bench/rules_snapshot.py).

Run: .venv/bin/python -m bench.rules_restore [--schools 40] [--memory-schools 300] [--gap 60]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.report import machine, write_section
from bench.rules_eval import DAY, HOUR, MINUTE, NOW, PROFILES_EXAMPLE, build_inventory
from bench.rules_snapshot import rows as snapshot_rows
from bench.rules_snapshot import snapshot_restore
from collector.config import Influx1Storage
from collector.inventory import Inventory, School
from collector.late import LATE_MS
from collector.reports.query import InfluxReader
from collector.rules import RulesEngine, RulesSettings, load_policies
from collector.rules.restore import INFLIGHT_MS, Restorer
from collector.storage.lineprotocol import sample_line
from common.timetable import SchoolHours
from common.wire import AgentIdentity, Sample

ROOT = Path(__file__).resolve().parents[1]
STEP = 5 * MINUTE


def week(school: School, rng: random.Random) -> Iterator[tuple[AgentIdentity, Sample]]:
    """A school week of samples, oldest first, with the agent that sent each."""
    gw = AgentIdentity(school.district, school.id, f"{school.id}-gw")
    calendar = SchoolHours().calendar(school)
    tier = rng.choice([3.9, 9.6, 95.0, 950.0])
    health = {d.id: rng.choice([1.0, 1.0, 0.9, 0.5, 0.0]) for d in school.devices}
    rooms = [c.id for c in school.classrooms if c.ordinary]
    start = NOW - 7 * DAY
    for ts in range(start - start % STEP, NOW, STEP):
        yield gw, Sample("reach", ts, {"target": "internet", "target_role": "internet",
                                       "method": "tcp"}, {"up": rng.random() > 0.01})
        if ts % (6 * HOUR) == 0 and calendar.is_school_time(ts + 3 * HOUR):
            yield gw, Sample("speedtest", ts, {"server": "http://hub"},
                             {"down_mbps": tier * rng.uniform(0.8, 1.0)})
        if not calendar.is_school_time(ts):
            continue
        for room in rooms:
            pc = AgentIdentity(school.district, school.id, f"{school.id}-pc{room[1:]}")
            yield pc, Sample("iface", ts, {"iface": "eth0", "role": "lan"},
                             {"link_mbps": 1000.0, "up": True})
            for b in range(3):
                yield pc, Sample("wifi", ts, {"classroom": room, "ssid": "S",
                                              "bssid": f"00:00:00:00:00:0{b}"},
                                 {"rssi_dbm": rng.uniform(-80, -50)})
        for device in school.devices:
            yield gw, Sample("av", ts, {"device": device.id, "classroom": device.classroom,
                                        "device_type": device.type},
                             {"online": rng.random() < health[device.id]})


def post(url: str, db: str, lines: list[str]) -> None:
    """One /write of line protocol (ms)."""
    req = urllib.request.Request(f"{url}/write?db={db}&precision=ms",
                                 data="\n".join(lines).encode(), method="POST")
    urllib.request.urlopen(req, timeout=120).read()


class TimedReader:
    """The InfluxReader, with the time spent in it counted (request and JSON)."""

    def __init__(self, reader: InfluxReader) -> None:
        self.reader = reader
        self.seconds = 0.0

    def query(self, influxql: str) -> list[Any]:
        """InfluxReader.query, timed."""
        begun = time.perf_counter()
        try:
            return self.reader.query(influxql)
        finally:
            self.seconds += time.perf_counter() - begun


def inventory(schools: int, classrooms: int) -> Inventory:
    """bench/rules_eval.py's inventory, its districts in the east (rules ask for a region)."""
    data = build_inventory(schools, classrooms, random.Random(7)).model_dump(
        exclude_unset=True, by_alias=True)
    for district in data["districts"]:
        district["region"] = "east"
    return Inventory.model_validate(data)


def engine_for(inv: Inventory) -> RulesEngine:
    """An engine of the example profiles at NOW."""
    return RulesEngine(inv, load_policies(PROFILES_EXAMPLE), RulesSettings(), clock=lambda: NOW)


@contextlib.contextmanager
def influxdb() -> Iterator[str]:
    """A throwaway InfluxDB 1.x (scripts/services.sh) with a database 'restore'; its URL."""
    with tempfile.TemporaryDirectory() as d:
        # A province has ~1.5 million series and 300,000 device ids: over InfluxDB's default
        # limits (1 million series per database, 100,000 values per tag), as a province's
        # InfluxDB must be configured too (docs/scaling.md).
        limits = {**os.environ, "INFLUXDB_DATA_MAX_SERIES_PER_DATABASE": "0",
                  "INFLUXDB_DATA_MAX_VALUES_PER_TAG": "0"}
        out = subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "start", d, "influxdb"],
                             capture_output=True, text=True, check=True, env=limits)
        env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        url = env["INFLUXDB_URL"]
        try:
            urllib.request.urlopen(f"{url}/query", data=urllib.parse.urlencode(
                {"q": "CREATE DATABASE restore"}).encode(), timeout=30).read()
            yield url
        finally:
            subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "stop", d], check=False)


def real_fill(schools: int, classrooms: int) -> dict[str, float]:
    """Part 1: fill InfluxDB, restore from it, check the pass."""
    inv = inventory(schools, classrooms)
    live = engine_for(inv)
    with influxdb() as url:
        rng, stored, begun, lines = random.Random(8), 0, time.perf_counter(), []
        for school in inv.schools:
            for who, sample in week(school, rng):
                live.observe(who, [sample])
                lines.append(sample_line(sample, who))
                if len(lines) >= 20_000:
                    post(url, "restore", lines)
                    stored, lines = stored + len(lines), []
        post(url, "restore", lines)
        stored += len(lines)
        fill_s = time.perf_counter() - begun
        engine = engine_for(inv)
        reader = TimedReader(InfluxReader(Influx1Storage(
            kind="influxdb1", url=url, database="restore", timeout=300.0)))
        restorer = Restorer(engine, reader)
        begun = time.perf_counter()
        stats = restorer.replay(restorer.window_start(NOW) - 1, NOW)
        restore_s = time.perf_counter() - begun
    same = engine.evaluate(NOW) == live.evaluate(NOW)
    return {"schools": schools, "stored": stored, "fill_s": fill_s, "replayed": stats.samples,
            "restore_s": restore_s, "query_s": reader.seconds, "queries": stats.queries,
            "same": float(same)}


def in_memory(full: int, classrooms: int, schools: int) -> dict[str, float]:
    """Part 2: replay a week of ``schools`` schools into an engine of ``full`` schools."""
    inv = inventory(full, classrooms)
    engine = engine_for(inv)
    rng = random.Random(9)
    replayed, replay_s = 0, 0.0
    for school in inv.schools[:schools]:
        items = list(week(school, rng))
        begun = time.perf_counter()
        engine.replay(items)
        replay_s += time.perf_counter() - begun
        replayed += len(items)
    begun = time.perf_counter()
    results = engine.evaluate(NOW)
    return {"full": full, "schools": schools, "replayed": replayed, "replay_s": replay_s,
            "pass_s": time.perf_counter() - begun, "results": len(results)}


def main() -> int:
    """Run both parts, print, write docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schools", type=int, default=40, help="schools in the real fill")
    parser.add_argument("--classrooms", type=int, default=30)
    parser.add_argument("--full", type=int, default=10_000, help="schools of the engine")
    parser.add_argument("--memory-schools", type=int, default=300,
                        help="schools whose week is replayed in memory")
    parser.add_argument("--gap", type=int, default=60,
                        help="seconds of ingest after the snapshot (rules.snapshot_every)")
    parser.add_argument("--no-write", action="store_true", help="do not touch benchmarks.md")
    args = parser.parse_args()
    with influxdb() as url:
        snap = snapshot_restore(inventory(args.full, args.classrooms), PROFILES_EXAMPLE, url,
                                "restore", gap_s=args.gap, post=post)
    print(f"snapshot: {snap}")
    real = real_fill(args.schools, args.classrooms)
    per_school = real["replayed"] / real["schools"]
    rate = real["replayed"] / real["restore_s"]
    print(f"real fill: {real}")
    mem = in_memory(args.full, args.classrooms, args.memory_schools)
    load = os.getloadavg()[0]
    mem_rate = mem["replayed"] / mem["replay_s"]
    print(f"in memory: {mem}")
    full_samples = per_school * args.full
    read_s = args.gap + (INFLIGHT_MS + LATE_MS) / 1000  # the in-flight margin before it
    rows = [
        f"| InfluxDB -> state, {real['schools']:.0f} schools (real fill) | "
        f"{real['replayed']:,.0f} | {real['restore_s']:.1f} s (queries {real['query_s']:.1f} s, "
        f"{real['queries']:.0f}) | {rate:,.0f}/s | "
        f"{'equal' if real['same'] else 'DIFFERENT'} |",
        f"| replay into the state only, {mem['schools']:.0f} of {mem['full']:,.0f} schools "
        f"(in memory) | {mem['replayed']:,.0f} | {mem['replay_s']:.1f} s | {mem_rate:,.0f}/s | |",
        f"| **{args.full:,} schools, extrapolated** from the real fill's rate | "
        f"{full_samples:,.0f} | **{full_samples / rate / 60:,.0f} min** | | |",
    ]
    if not args.no_write:
        write_section("rules_restore", "\n".join([
            "## Rules state restore (`bench/rules_restore.py`)", "",
            f"What `schoolmon collector run` replays at start (collector/rules/restore.py), for "
            f"schools of {args.classrooms} classrooms (bench/rules_eval.py's inventory): a "
            "school week in InfluxDB 1.x with every device checked and every classroom's "
            "Wi-Fi scanned (3 BSSIDs) every 5 minutes in school hours, the gateway's reach "
            "every 5 minutes day and night, each classroom PC's link, 4 speed tests a day; "
            f"{per_school:,.0f} stored samples per school are replayed (reach and links: only "
            "the newest per series). The real fill was restored from InfluxDB on this machine; "
            "the full province was not filled (a week of it is "
            f"{full_samples / 1e6:,.0f} million samples), so its row is the real fill's rate "
            "times the samples. Target: <= 60 s for 10,000 schools.", "",
            f"Measured {machine()}.", "",
            "| what | samples replayed | time | samples/s | pass vs. live engine |",
            "|---|---|---|---|---|", *rows, "",
            f"One evaluation pass of the {mem['full']:,.0f}-school engine (example profiles, "
            f"{mem['schools']:.0f} schools with a week of data): {mem['pass_s']:.1f} s, "
            f"{mem['results']:,.0f} results; bench/rules_eval.py above has the pass with "
            "every school filled.", "",
            f"Load average after these two parts: {load:.1f} on {os.cpu_count()} cores "
            "(other engineers' tests share the machine).", "",
            "Without a snapshot (a fresh host, a standby on another host, a damaged or "
            "stale file) this full replay is the restore: exact, seconds to minutes for a "
            "district, hours for a province's week.", "",
            "**With the state snapshot** (collector/rules/snapshot.py, every "
            "`rules.snapshot_every`, 60 s by default): the live engine of "
            f"{args.full:,} schools filled with a week (bench/rules_eval.py), its ingest "
            "around the snapshot real (every school's 5-minute round at its own offset: "
            f"{snap['stored']:,.0f} samples for the {read_s:.0f} s read back) in InfluxDB "
            "1.x, the collector killed just before its next snapshot "
            f"({snap['gap_s']:.0f} s of ingest after it, the worst case). The restored "
            "engine's pass is compared with the live engine's. Load average "
            f"{snap['load']:.1f} on {os.cpu_count()} cores (other engineers' tests share "
            "the machine).", "",
            "| what | samples replayed | time | samples/s | pass vs. live engine |",
            "|---|---|---|---|---|", *snapshot_rows(snap, args.full, args.gap), "",
            f"One evaluation pass of the restored {args.full:,}-school engine: "
            f"{snap['pass_s']:.1f} s. Target <= 60 s: "
            f"**{'met' if snap['restore_s'] <= 60 else 'NOT met'}** "
            f"({snap['restore_s']:.1f} s, {snap['restore_s'] / snap['pass_s']:.1f} x one "
            "pass). The restore's time is the snapshot's load plus the samples after it: "
            f"~{1e6 * (snap['restore_s']) / max(snap['replayed'], 1):.0f} us per sample here; "
            "agents that sample more often than this bench's 5-minute rounds make the gap "
            "larger in proportion (docs/scaling.md)."]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
