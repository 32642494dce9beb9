"""Hand-built inventories, profiles and sample streams for the rules tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from collector.inventory import Inventory
from collector.rules import PolicyProfile, RulesEngine, RulesSettings
from common.wire import AgentIdentity, Sample

CST = dt.timezone(dt.timedelta(hours=8))
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# Monday 2026-11-23 in Asia/Shanghai; school hours default 07:30-12:00, 13:30-17:30.
MONDAY = dt.datetime(2026, 11, 23, tzinfo=CST)


def at(day: int, hour: int, minute: int = 0) -> int:
    """ms of MONDAY + day days, at hh:mm Shanghai time."""
    when = MONDAY + dt.timedelta(days=day, hours=hour, minutes=minute)
    return int(when.timestamp() * 1000)


def school(sid: str, district: str = "d1", **extra: Any) -> dict[str, Any]:
    """An inventory school entry with two ordinary classrooms and a lab."""
    entry: dict[str, Any] = {
        "id": sid, "name": sid, "district": district, "category": "urban", "classes": 10,
        "contracted_mbps": 100,
        "classrooms": [{"id": "r1"}, {"id": "r2"}, {"id": "lab", "ordinary": False}],
        "devices": [{"id": f"{sid}-p1", "classroom": "r1", "type": "projector"},
                    {"id": f"{sid}-p2", "classroom": "r2", "type": "panel"}],
    }
    entry.update(extra)
    return entry


def inventory(*schools: dict[str, Any], agents: list[dict[str, Any]] | None = None,
              districts: tuple[str, ...] = ("d1", "d2")) -> Inventory:
    """An inventory of the given schools, one gateway agent each unless agents are given."""
    if agents is None:
        agents = [{"id": f"{s['id']}-gw", "school": s["id"]} for s in schools]
    return Inventory.model_validate({
        "districts": [{"id": d, "name": d} for d in districts],
        "schools": list(schools), "agents": agents})


def profile(*rules: dict[str, Any], name: str = "test") -> PolicyProfile:
    """A profile of the given rules (source filled in)."""
    return PolicyProfile.model_validate({
        "name": name, "title": "t", "document": "d",
        "rules": [{"source": "quote", **r} for r in rules]})


class Clock:
    """An injected clock in ms, moved by the test."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        """Now."""
        return self.now_ms


def engine(inv: Inventory, *rules: dict[str, Any], now_ms: int,
           **settings: Any) -> tuple[RulesEngine, Clock]:
    """An engine over ``inv`` with one profile of ``rules`` and an injected clock."""
    clock = Clock(now_ms)
    eng = RulesEngine(inv, [profile(*rules)] if rules else [],
                      RulesSettings.model_validate(settings), clock=clock)
    return eng, clock


def gw(sid: str, district: str = "d1") -> AgentIdentity:
    """The gateway agent of a school."""
    return AgentIdentity(district, sid, f"{sid}-gw")


def speedtest(ts: int, down: float, up: float | None = None) -> Sample:
    """A speed test result."""
    fields: dict[str, int | float | bool | str] = {"down_mbps": down}
    if up is not None:
        fields["up_mbps"] = up
    return Sample("speedtest", ts, {"server": "http://hub:8080"}, fields)


def av(ts: int, device: str, room: str, online: bool, type_: str = "projector") -> Sample:
    """A classroom device check."""
    return Sample("av", ts, {"device": device, "classroom": room, "device_type": type_},
                  {"online": online})


def wifi(ts: int, room: str, rssi: float, bssid: str = "aa:bb:cc:dd:ee:01") -> Sample:
    """One BSSID of one Wi-Fi scan."""
    return Sample("wifi", ts, {"classroom": room, "ssid": "School", "bssid": bssid},
                  {"rssi_dbm": rssi})


def reach(ts: int, up: bool, role: str = "internet") -> Sample:
    """A reachability check of one target."""
    return Sample("reach", ts, {"target": role, "target_role": role, "method": "tcp"},
                  {"up": up})


def every(start: int, end: int, step: int) -> range:
    """Timestamps from start (inclusive) to end (exclusive)."""
    return range(start, end, step)
