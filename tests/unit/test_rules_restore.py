"""Restore: held live input, replayed samples, retained statuses and a storage that is down."""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

import pytest

from collector.config import Influx1Storage
from collector.reports.query import InfluxReader
from collector.rules.restore import restore_on_start
from collector.rules.state import READ_FIELDS
from common.wire import AgentIdentity, Sample
from tests.conftest import wait_until
from tests.rules_fixtures import MINUTE, at, av, engine, every, gw, inventory, school, wifi

RULES = [{"id": "mm", "metric": "multimedia_ratio", "threshold": 100, "comparator": ">="},
         {"id": "wifi", "metric": "wifi_coverage", "threshold": 100, "comparator": ">="},
         {"id": "fresh", "metric": "agent_fresh", "threshold": 100, "comparator": ">="}]
NOW = at(4, 18)


def week(sid: str) -> list[Sample]:
    """A school week of 5-minute device checks (p2 down Tuesday and Wednesday) and Wi-Fi scans."""
    out: list[Sample] = []
    for day in range(5):
        for ts in every(at(day, 8), at(day, 17), 5 * MINUTE):
            out.append(av(ts, f"{sid}-p1", "r1", True))
            out.append(av(ts, f"{sid}-p2", "r2", day not in (1, 2), "panel"))
            out.append(wifi(ts, "r1", -60.0))
            out.append(wifi(ts, "r1", -80.0, bssid="aa:bb:cc:dd:ee:02"))
            out.append(wifi(ts, "r2", -70.0 if day % 2 else -50.0))
    return out


def values(eng: object) -> list[tuple[str, str | None, float | None, bool]]:
    """(rule, school, value, met) of a pass at NOW."""
    return [(r.rule, r.school, r.value, r.met) for r in eng.evaluate(NOW)]  # type: ignore[attr-defined]


def test_replayed_and_held_samples_give_the_live_state() -> None:
    """Old samples replayed after newer live ones arrived (held): the state of a live engine."""
    inv = inventory(school("s1"))
    live, _ = engine(inv, *RULES, now_ms=NOW)
    samples = week("s1")
    live.observe(gw("s1"), samples)
    restored, _ = engine(inv, *RULES, now_ms=NOW)
    restored.hold_for_restore()
    assert not restored.ready.is_set()
    # Friday afternoon arrives live while the restore is still reading Monday..Friday noon.
    split = next(i for i, s in enumerate(samples) if s.ts_ms >= at(4, 12))
    restored.observe(gw("s1"), samples[split:])
    restored.replay([(gw("s1"), s) for s in samples[:split + 40]])  # overlaps: counted once
    assert restored.finish_restore() == len(samples) - split
    assert restored.ready.is_set()
    assert values(restored) == values(live)
    mm = {r.rule: r.value for r in restored.evaluate(NOW)}
    assert mm["mm"] == 50.0 and mm["wifi"] == 50.0  # p2 up 60 %, r2 good on 3 scans in 5


def test_a_retained_status_repeated_on_subscribe_keeps_the_stored_time() -> None:
    """The broker re-sends retained statuses to a restarted collector: not news."""
    inv = inventory(school("s1"), school("s2"))
    eng, _ = engine(inv, *RULES, now_ms=NOW)
    eng.hold_for_restore()
    eng.replay_status(gw("s1"), "offline", at(4, 9))
    eng.replay_status(gw("s2"), "offline", at(4, 9))
    eng.replay_status(gw("s2"), "online", at(4, 8))  # older than the stored one: ignored
    eng.observe_status(gw("s1"), "offline", NOW)  # the retained copy
    eng.observe_status(gw("s2"), "online", NOW)  # came back while the collector was down
    eng.finish_restore()
    agents = {s.school: s.agents[0] for s in eng.statuses(NOW)}
    assert (agents["s1"].status, agents["s1"].last_ms) == ("offline", at(4, 9))
    assert (agents["s2"].status, agents["s2"].last_ms) == ("online", NOW)


def test_heard_from_a_kind_the_rules_do_not_read() -> None:
    """The newest host or agent sample still says when an agent was last heard."""
    eng, _ = engine(inventory(school("s1")), *RULES, now_ms=NOW)
    eng.replay_heard(AgentIdentity("d1", "s1", "s1-gw"), NOW - 5 * MINUTE)
    eng.replay_heard(AgentIdentity("d1", "nowhere", "x"), NOW)  # not in the inventory: skipped
    fresh = next(r for r in eng.evaluate(NOW) if r.rule == "fresh")
    assert fresh.value == 100.0 and fresh.met


def test_storage_down_at_start_is_retried_and_said(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on the port: one warning per try, no pass until restored."""
    eng, _ = engine(inventory(school("s1")), *RULES, now_ms=NOW)
    eng.hold_for_restore()
    reader = InfluxReader(Influx1Storage(kind="influxdb1", url="http://127.0.0.1:9",
                                         database="x", timeout=1.0))
    stop = threading.Event()
    caplog.set_level(logging.INFO, "collector.rules.restore")
    thread = threading.Thread(target=lambda: restore_on_start(eng, reader, stop,
                                                              retry_every=0.05))
    thread.start()
    try:
        wait_until(lambda: sum("restore paused" in r.message for r in caplog.records) >= 2, 10,
                   "two tries said")
    finally:
        stop.set()
        thread.join(10)
    paused = next(r.message for r in caplog.records if "restore paused" in r.message)
    assert "0/1 schools" in paused and "unreachable" in paused and "ingest continues" in paused
    assert not eng.ready.is_set()


def test_more_live_samples_than_the_hold_keeps_are_read_back() -> None:
    """Past max_held the hold lets samples go (they are in storage) and says so once."""
    eng, _ = engine(inventory(school("s1")), *RULES, now_ms=NOW)
    eng.max_held = 100
    eng.hold_for_restore()
    samples = week("s1")
    eng.observe_status(gw("s1"), "online", NOW)
    eng.observe(gw("s1"), samples[:60])
    eng.observe(gw("s1"), samples[60:120])  # over 100: everything held so far let go
    assert eng.finish_restore() is None  # read back from storage, then again
    assert not eng.ready.is_set()
    eng.replay([(gw("s1"), s) for s in samples[:120]])  # what the restore reads back
    eng.observe(gw("s1"), samples[120:150])
    assert eng.finish_restore() == 30
    live, _ = engine(inventory(school("s1")), *RULES, now_ms=NOW)
    live.observe_status(gw("s1"), "online", NOW)
    live.observe(gw("s1"), samples[:150])
    assert values(eng) == values(live)
    assert eng.statuses(NOW)[0].agents[0].status == "online"  # statuses are always held


class Reading(Sample):
    """A sample that notes which fields the state reads through the typed view."""

    read: ClassVar[set[tuple[str, str]]] = set()

    def number(self, name: str) -> float | None:
        """Noted, then the wire's answer."""
        Reading.read.add((self.kind, name))
        return super().number(name)

    def flag(self, name: str) -> bool | None:
        """Noted, then the wire's answer."""
        Reading.read.add((self.kind, name))
        return super().flag(name)

    def text(self, name: str) -> str | None:
        """Noted, then the wire's answer."""
        Reading.read.add((self.kind, name))
        return super().text(name)


def test_the_restore_selects_every_field_the_state_reads() -> None:
    """A handler reading a field restore.py does not select would restore a different state."""
    agents = [{"id": "s1-gw", "school": "s1"},
              {"id": "s1-pc1", "school": "s1", "role": "classroom_pc", "classroom": "r1"}]
    eng, _ = engine(inventory(school("s1"), agents=agents), *RULES, now_ms=NOW)
    full = {"av": {"online": True, "power": "on", "lamp_hours": 10.0},
            "wifi": {"rssi_dbm": -60.0, "channel": 6.0, "connected": True},
            "speedtest": {"down_mbps": 90.0, "up_mbps": 40.0, "bytes": 5e6, "duration_s": 9.0,
                          "rtt_ms": 3.0, "jitter_ms": 1.0},
            "reach": {"up": True, "rtt_ms": 2.0, "loss_pct": 0.0},
            "iface": {"up": True, "link_mbps": 1000.0, "rx_bps": 1.0},
            "netdev_if": {"up": True, "speed_mbps": 1000.0, "in_bps": 1.0}}
    tags = {"av": {"device": "s1-p1", "classroom": "r1"}, "wifi": {"classroom": "r1"},
            "reach": {"target": "internet", "target_role": "internet"},
            "netdev_if": {"device": "core", "ifname": "xe0"}}
    pc = AgentIdentity("d1", "s1", "s1-pc1")
    for kind, fields in full.items():
        eng.observe(pc, [Reading(kind, at(0, 9), tags.get(kind, {}), dict(fields))])
    assert {k for k, _f in Reading.read} == set(READ_FIELDS)
    assert {(k, f) for k, f in Reading.read} <= {(k, f) for k, fs in READ_FIELDS.items()
                                                 for f in fs}
