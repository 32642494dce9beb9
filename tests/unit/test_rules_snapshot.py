"""The state snapshot's file and writer, the late-arrival journal, and order-free port readings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest

from collector.late import LATE_MS, late_lines
from collector.rules.snapshot import Snapshotter, dump, load, storage_settled
from collector.rules.state import READ_TAGS
from collector.storage import StorageHealth
from common.wire import AgentIdentity, Sample
from tests.rules_fixtures import MINUTE, at, av, engine, gw, inventory, school, wifi

NOW = at(2, 12)
RULES = [{"id": "mm", "metric": "multimedia_ratio", "threshold": 100, "comparator": ">="}]


def test_journal_one_point_per_agent_with_the_late_range() -> None:
    """Only a batch older than LATE_MS is journalled; two of one agent make one range."""
    pc = AgentIdentity("d1", "s1", "s1-pc1")
    fresh = [av(NOW - 5_000, "p1", "r1", True)]
    old1 = [av(NOW - 3 * 86_400_000, "p1", "r1", True), av(NOW - 2 * 86_400_000, "p1", "r1", True)]
    old2 = [av(NOW - LATE_MS - 1, "p1", "r1", True), av(NOW - 1_000, "p1", "r1", True)]
    assert late_lines([(gw("s1"), fresh)], NOW) == []
    lines = late_lines([(gw("s1"), fresh), (pc, old1), (pc, old2)], NOW)
    assert lines == [f"rules_late,agent=s1-pc1,district=d1,school=s1 "
                     f"min_ts_ms={float(NOW - 3 * 86_400_000)!r},"
                     f"max_ts_ms={float(NOW - 1_000)!r} {NOW}"]


def test_a_port_keeps_its_newest_reading_whatever_the_order() -> None:
    """A spooled older reading arriving after a newer one does not replace it."""
    eng, _ = engine(inventory(school("s1")), *RULES, now_ms=NOW)
    port = {"device": "core", "ifname": "xe0"}
    eng.observe(gw("s1"), [Sample("netdev_if", NOW - MINUTE, port, {"up": True,
                                                                  "speed_mbps": 1000.0})])
    eng.observe(gw("s1"), [Sample("netdev_if", NOW - 60 * MINUTE, port, {"up": False})])
    assert eng.read_state("s1", lambda s: s.backbone) == {("core", "xe0"): (NOW - MINUTE,
                                                                           1000.0)}


def test_round_trip_and_file_mode(tmp_path: Path) -> None:
    """What is written is loaded into a fresh engine as the same pass; the file is 0600."""
    inv = inventory(school("s1"), school("s2"))
    live, _ = engine(inv, *RULES, now_ms=NOW)
    for ts in range(at(0, 8), at(2, 11), 5 * MINUTE):
        live.observe(gw("s1"), [av(ts, "s1-p1", "r1", ts % 3 != 0), wifi(ts, "r1", -60.0)])
    path = tmp_path / "rules.snapshot"
    dump(live, "store", path)
    assert path.stat().st_mode & 0o777 == 0o600
    fresh, _ = engine(inv, *RULES, now_ms=NOW)
    loaded = load(fresh, "store", path, at(0, 0))
    assert loaded is not None and loaded.schools == ["s1", "s2"] and loaded.taken_ms == NOW
    assert [(r.school, r.value) for r in fresh.evaluate(NOW)] == [
        (r.school, r.value) for r in live.evaluate(NOW)]
    assert load(fresh, "other store", path, at(0, 0)) is None


def test_the_writer_waits_for_a_restored_state_and_settled_storage(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No file while restoring or after a failed write; a failing directory is said once."""
    eng, _ = engine(inventory(school("s1")), *RULES, now_ms=NOW)
    health = [StorageHealth()]
    writer = Snapshotter(eng, "store", tmp_path / "s", 60,
                         settled=storage_settled(lambda: health[0]))
    eng.hold_for_restore()
    assert not writer.write() and not (tmp_path / "s").exists()
    eng.finish_restore()
    health[0] = StorageHealth(failures_total=1)  # a write failed since the last snapshot
    assert not writer.write()
    assert writer.write() and (tmp_path / "s").exists()  # settled again
    caplog.set_level(logging.INFO, "collector.rules.snapshot")
    broken = Snapshotter(eng, "store", tmp_path / "missing" / "s", 60)
    assert not broken.write() and not broken.write()
    assert caplog.text.count("cannot write the state snapshot") == 1


class Tags(dict[str, str]):
    """A sample's tags that note which keys the state reads."""

    read: ClassVar[set[tuple[str, str]]] = set()
    kind = ""

    def get(self, key: str, default: Any = None) -> Any:
        """Noted, then the dict's answer."""
        Tags.read.add((self.kind, key))
        return super().get(key, default)


def test_the_gap_selects_every_tag_the_state_reads() -> None:
    """A handler reading a tag gap.py does not select would restore a different state."""
    agents = [{"id": "s1-gw", "school": "s1"},
              {"id": "s1-pc1", "school": "s1", "role": "classroom_pc", "classroom": "r1"}]
    eng, _ = engine(inventory(school("s1"), agents=agents), *RULES, now_ms=NOW)
    fields = {"av": {"online": True}, "wifi": {"rssi_dbm": -60.0},
              "speedtest": {"down_mbps": 90.0, "bytes": 5e6, "duration_s": 9.0},
              "reach": {"up": True}, "iface": {"up": True, "link_mbps": 1000.0},
              "netdev_if": {"up": True, "speed_mbps": 1000.0}}
    for kind, values in fields.items():
        tags = Tags({"device": "s1-new", "classroom": "r1", "server": "http://hub",
                     "target": "internet", "target_role": "internet", "role": "lan",
                     "ifname": "xe0", "device_type": "panel"})
        tags.kind = kind
        eng.observe(AgentIdentity("d1", "s1", "s1-pc1"),
                    [Sample(kind, at(0, 9), tags, dict(values))])
    assert Tags.read == {(k, t) for k, ts in READ_TAGS.items() for t in ts}
