"""Restore from a state snapshot plus InfluxDB: the state of an engine that never stopped.

One week of three schools is delivered as the collector delivers it (stored, journal point for
a backlog included, then observed) into a "live" engine; a snapshot is taken on Thursday noon;
more is delivered after it, with school s2's gateway offline from Thursday 10:00 to Friday 10:30
and its spool then delivered at once (a backlog partly older than the snapshot). A fresh engine
restored from the snapshot and InfluxDB must equal the live one at Friday 11:00, and so must a
fresh engine restored without, or with a snapshot that does not fit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.config import Influx1Storage
from collector.late import late_lines
from collector.reports.query import InfluxReader
from collector.rules.engine import RulesEngine
from collector.rules.restore import RestoreStats, SnapshotSource, restore_on_start
from collector.rules.snapshot import dump, record
from collector.storage.lineprotocol import sample_line
from common.wire import AgentIdentity, Sample
from tests.conftest import Services, influx_query, wait_until
from tests.integration.test_rules_restore import post_lines
from tests.rules_fixtures import (
    MINUTE,
    at,
    av,
    engine,
    every,
    gw,
    inventory,
    reach,
    school,
    speedtest,
    wifi,
)
from tests.unit.test_rules_restore import RULES

pytestmark = pytest.mark.integration

SCHOOLS = ("s1", "s2", "s3")
SNAPSHOT_AT = at(3, 12)
OFFLINE = (at(3, 10), at(4, 10, 30))  # s2's gateway: spooled, delivered at the end
NOW = at(4, 11)
ALL_RULES = [*RULES, {"id": "net", "metric": "internet_up", "threshold": 1, "comparator": ">="},
             {"id": "access", "metric": "access_mbps", "threshold": 50, "comparator": ">="}]


def step(sid: str, ts: int) -> list[Sample]:
    """One 5-minute round of a school's gateway."""
    day_part = (ts // MINUTE) % 7
    out = [reach(ts, day_part != 3),
           av(ts, f"{sid}-p1", "r1", day_part != 2),
           av(ts, f"{sid}-p2", "r2", day_part % 3 != 0, "panel"),
           wifi(ts, "r1", -60.0 - 3 * day_part),
           wifi(ts, "r1", -75.0, bssid="aa:bb:cc:dd:ee:02"),
           wifi(ts, "r2", -50.0 - 5 * day_part)]
    if ts % (4 * 60 * MINUTE) == 0:
        out.append(speedtest(ts, 40.0 + 10 * day_part + 5 * SCHOOLS.index(sid)))
    return out


class District:
    """Delivers like the collector's writer: store (samples and journal), then observe."""

    def __init__(self, url: str, db: str) -> None:
        self.url, self.db = url, db
        self.live, self.clock = engine(inventory(*map(school, SCHOOLS)), *ALL_RULES,
                                       now_ms=at(0, 0))
        self.lines: list[str] = []

    def deliver(self, who: AgentIdentity, samples: list[Sample], received: int) -> None:
        """One stored batch."""
        self.lines += [sample_line(s, who) for s in samples]
        self.lines += late_lines([(who, samples)], received)
        self.clock.now_ms = received
        self.live.observe(who, samples)

    def run(self, start: int, end: int, *, hold_s2: list[Sample] | None = None) -> None:
        """Every school's rounds of ``start`` <= ts < ``end`` (school hours, Mon-Fri)."""
        for ts in every(start, end, 5 * MINUTE):
            for sid in SCHOOLS:
                batch = step(sid, ts)
                if hold_s2 is not None and sid == "s2" and OFFLINE[0] <= ts < OFFLINE[1]:
                    hold_s2.extend(batch)  # the agent's spool
                else:
                    self.deliver(gw(sid), batch, ts)
        post_lines(self.url, self.db, self.lines)
        self.lines = []


@pytest.fixture(scope="module")
def district(services: Services, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[District, Path]]:
    """The week delivered, with a snapshot of Thursday noon; the live engine at Friday 11:00."""
    db = "snap_" + str(id(tmp_path_factory))[-8:]
    influx_query(services.influx_url, "", f'CREATE DATABASE "{db}"')
    d = District(services.influx_url, db)
    snap = tmp_path_factory.mktemp("snap") / "rules.snapshot"
    spool: list[Sample] = []
    d.run(at(0, 0), SNAPSHOT_AT, hold_s2=spool)
    dump(d.live, store(d), snap)
    d.run(SNAPSHOT_AT, OFFLINE[1], hold_s2=spool)
    d.deliver(gw("s2"), spool, OFFLINE[1])  # the backlog, one batch
    d.run(OFFLINE[1], NOW)
    d.clock.now_ms = NOW
    yield d, snap
    influx_query(services.influx_url, "", f'DROP DATABASE "{db}"')


def store(d: District) -> str:
    """The storage a snapshot belongs to."""
    return f"{d.url}|{d.db}"


def restored(d: District, snap: Path | None, **settings: Any) -> tuple[RulesEngine, RestoreStats]:
    """A fresh engine restored at NOW, with or without the snapshot."""
    eng, _ = engine(inventory(*map(school, SCHOOLS)), *ALL_RULES, now_ms=NOW, **settings)
    eng.hold_for_restore()
    reader = InfluxReader(Influx1Storage(kind="influxdb1", url=d.url, database=d.db))
    stats = restore_on_start(eng, reader, threading.Event(),
                             snap=None if snap is None else SnapshotSource(snap, store(d)))
    assert stats is not None and eng.ready.is_set()
    return eng, stats


def values(eng: RulesEngine) -> list[tuple[str, str | None, float | None, bool]]:
    """(rule, school, value, met) of a pass at NOW."""
    return [(r.rule, r.school, r.value, r.met) for r in eng.evaluate(NOW)]


def state(eng: RulesEngine) -> dict[str, str]:
    """Every school's whole state (counters' bytes included), lists in a stable order.

    As text: a speed test without an upload figure holds NaN, which equals nothing.
    """
    return {sid: repr(tuple(sorted(part, key=repr) if isinstance(part, list) else part
                            for part in eng.read_state(sid, record)))
            for sid in eng.school_ids()}


def same_as_live(d: District, eng: RulesEngine) -> None:
    """Every rule, school status and bit of state equal to the live engine's."""
    assert values(eng) == values(d.live)
    assert eng.statuses(NOW) == d.live.statuses(NOW)
    assert state(eng) == state(d.live)


def test_snapshot_plus_gap_and_backlog_is_the_live_state(
        district: tuple[District, Path], caplog: pytest.LogCaptureFixture) -> None:
    """(a) samples after the snapshot and (b) a day-old backlog stored after it."""
    d, snap = district
    caplog.set_level(logging.INFO, "collector.rules.restore")
    eng, stats = restored(d, snap)
    same_as_live(d, eng)
    log = caplog.text
    assert "loaded for 3 schools" in log and "1 schools had a backlog" in log, log
    full_eng, full = restored(d, None)
    same_as_live(d, full_eng)
    assert stats.samples < full.samples / 2, (stats.samples, full.samples)
    results = {(r.rule, r.school): r for r in eng.evaluate(NOW)}
    assert results[("mm", "s2")].value is not None  # s2 really has its week back


def test_without_the_journal_the_backlog_is_missed(district: tuple[District, Path]) -> None:
    """The journal is what finds the backlog's part older than the snapshot."""
    d, snap = district
    influx_query(d.url, d.db, 'SELECT * INTO "rules_late_kept" FROM "rules_late" GROUP BY *')
    influx_query(d.url, d.db, 'DROP MEASUREMENT "rules_late"')
    try:
        eng, _ = restored(d, snap)
        got, want = state(eng), state(d.live)
        assert got["s1"] == want["s1"] and got["s2"] != want["s2"]
    finally:
        influx_query(d.url, d.db, 'SELECT * INTO "rules_late" FROM "rules_late_kept" GROUP BY *')
    eng, _ = restored(d, snap)
    same_as_live(d, eng)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a snapshot")


@pytest.mark.parametrize(("damage", "why"), [
    (_truncate, "truncated or damaged"), (_flip, "truncated or damaged"),
    (_garbage, "not a rules state snapshot")])
def test_a_damaged_snapshot_falls_back_to_the_full_replay(
        district: tuple[District, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture,
        damage: Any, why: str) -> None:
    """(c) corrupt or truncated: one log line, the whole window from InfluxDB, still equal."""
    d, snap = district
    copy = tmp_path / "s"
    copy.write_bytes(snap.read_bytes())
    damage(copy)
    caplog.set_level(logging.INFO, "collector.rules")
    eng, _ = restored(d, copy)
    same_as_live(d, eng)
    assert f"ignored ({why})" in caplog.text


@pytest.mark.parametrize("case", [
    (NOW - 9 * 86_400_000, None, 28, "older than the longest window"),
    (NOW + 86_400_000, None, 28, "in the future"),
    (SNAPSHOT_AT, "http://elsewhere|db", 28, "other bucket geometry, state settings or storage"),
    (SNAPSHOT_AT, None, 14, "other bucket geometry, state settings or storage")])
def test_a_snapshot_that_does_not_fit_falls_back(
        district: tuple[District, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture,
        case: tuple[int, str | None, int, str]) -> None:
    """(c) stale, from the future, of another storage or another geometry: full replay."""
    d, _snap = district
    taken, store_of, buckets, why = case
    other, _ = engine(inventory(*map(school, SCHOOLS)), *ALL_RULES, now_ms=taken,
                      buckets=buckets)
    path = tmp_path / "s"
    dump(other, store_of or store(d), path)
    caplog.set_level(logging.INFO, "collector.rules")
    eng, _ = restored(d, path)
    same_as_live(d, eng)
    assert why in caplog.text


def test_a_school_whose_inventory_changed_gets_its_own_full_replay(
        district: tuple[District, Path], caplog: pytest.LogCaptureFixture) -> None:
    """s3 edited in the inventory, s4 added: those two replayed in full, the rest from the file."""
    d, snap = district
    inv = inventory(school("s1"), school("s2"), school("s3", classes=12), school("s4"))
    caplog.set_level(logging.INFO, "collector.rules.restore")
    reader = InfluxReader(Influx1Storage(kind="influxdb1", url=d.url, database=d.db))
    got = []
    for path in (snap, None):
        eng, _ = engine(inv, *ALL_RULES, now_ms=NOW)
        eng.hold_for_restore()
        restore_on_start(eng, reader, threading.Event(),
                         snap=None if path is None else SnapshotSource(path, store(d)))
        got.append((values(eng), eng.statuses(NOW)))
    assert got[0] == got[1]
    assert "loaded for 2 schools" in caplog.text
    assert "restoring the state of 2 schools" in caplog.text  # s3 and s4 in full


def test_storage_down_after_the_snapshot_is_retried_and_said(
        district: tuple[District, Path], caplog: pytest.LogCaptureFixture) -> None:
    """(d) the snapshot loads, InfluxDB does not answer: it says so and retries."""
    d, snap = district
    eng, _ = engine(inventory(*map(school, SCHOOLS)), *ALL_RULES, now_ms=NOW)
    eng.hold_for_restore()
    reader = InfluxReader(Influx1Storage(kind="influxdb1", url="http://127.0.0.1:9",
                                         database="x", timeout=1.0))
    stop = threading.Event()
    caplog.set_level(logging.INFO, "collector.rules.restore")
    thread = threading.Thread(target=lambda: restore_on_start(
        eng, reader, stop, retry_every=0.05, snap=SnapshotSource(snap, store(d))))
    thread.start()
    try:
        wait_until(lambda: sum("restore paused" in r.message for r in caplog.records) >= 2,
                   10, "two tries said")
    finally:
        stop.set()
        thread.join(10)
    paused = [r.message for r in caplog.records if "restore paused" in r.message]
    assert "unreachable" in paused[0] and "ingest continues" in paused[0]
    assert not eng.ready.is_set()
