"""The school, clock and samples the alert tests play with (a storm at one school)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from collector.alerts.engine import AlertEngine
from collector.alerts.settings import AlertRulesSettings, AlertSettings
from collector.inventory import Inventory
from common.wire import AgentIdentity, Sample
from tests.peers.smtp_server import USER, SmtpServer

SCHOOL = "gz-th-001"
SCHOOL_NAME = "天河第一小学"
GATEWAY = AgentIdentity("gz-th", SCHOOL, "gz-th-001-gw")
DEVICES = [f"panel-{i:02d}" for i in range(1, 31)]
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Tuesday 2026-05-12 09:00 in Shanghai: school hours of the default timetable.
T0 = dt.datetime(2026, 5, 12, 9, 0, tzinfo=SHANGHAI).timestamp()
PASSWORD = "Smtp-Secret-4711"


class FakeClock:
    """The engine's injected clock: seconds since the epoch, set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        """Now."""
        return self.now


def inventory() -> Inventory:
    """One school with 30 classrooms, a panel in each, and its gateway agent."""
    return Inventory.model_validate({
        "districts": [{"id": "gz-th", "name": "天河区"}],
        "schools": [{
            "id": SCHOOL, "name": SCHOOL_NAME, "district": "gz-th", "category": "urban",
            "classes": 30, "timezone": "Asia/Shanghai",
            "classrooms": [{"id": d.removeprefix("panel-")} for d in DEVICES],
            "devices": [{"id": d, "classroom": d.removeprefix("panel-"), "type": "panel"}
                        for d in DEVICES],
        }],
        "agents": [{"id": GATEWAY.agent, "school": SCHOOL, "role": "gateway"}],
    })


def alert_settings(state: Path, server: SmtpServer, *, password: str = PASSWORD,
                   language: str = "zh-CN", **overrides: Any) -> AlertSettings:
    """AlertSettings for the test SMTP server; the password comes from an env variable."""
    smtp = {"host": "127.0.0.1", "port": server.port, "starttls": server.mode == "starttls",
            "tls": server.mode == "tls", "username": USER, "password_env": "SMTP_PW",
            "ca_file": str(server.ca_file)}
    return AlertSettings.model_validate({
        "smtp": smtp, "from": "schoolmon@district.example", "to": ["it@district.example"],
        "language": language, "group_wait": "30s", "repeat_interval": "4h",
        "send_resolved": True, "state_path": str(state), "dashboard_url": "http://grafana.example",
        **overrides,
    }, context={"environ": {"SMTP_PW": password}})


def alerts_yaml(state: Path, server: SmtpServer, **overrides: Any) -> dict[str, Any]:
    """The ``alerts:`` block of a collector.yaml for the test SMTP server, quick to mail (the
    collector process gets the password as SMTP_PW in its environment)."""
    return {
        "smtp": {"host": "127.0.0.1", "port": server.port, "starttls": True, "username": USER,
                 "password_env": "SMTP_PW", "ca_file": str(server.ca_file)},
        "from": "schoolmon@district.example", "to": ["it@district.example"],
        "language": "en", "group_wait": "1s", "state_path": str(state),
        # A re-announced alert goes out at the next tick, not after 5 minutes.
        "group_interval": "1s",
        **overrides,
    }


def engine(settings: AlertSettings, clock: FakeClock,
           rules: AlertRulesSettings | None = None) -> AlertEngine:
    """An engine on the injected clock (a new one on the same state_path is a restart)."""
    return AlertEngine(settings, inventory(), rules, clock=clock)


def uplink(ts: float, up: bool) -> list[Sample]:
    """The gateway's reach round toward the internet and the district, and its WAN link."""
    ms = int(ts * 1000)
    fields: dict[str, int | float | bool | str] = (
        {"up": True, "loss_pct": 0.0, "rtt_ms": 12.5} if up else {"up": False, "loss_pct": 100.0})
    return [
        Sample("reach", ms, {"target": "internet", "target_role": "internet", "method": "tcp"},
               dict(fields)),
        Sample("reach", ms, {"target": "district-hub", "target_role": "district",
                             "method": "icmp"}, dict(fields)),
        Sample("iface", ms, {"iface": "eth0", "role": "wan"}, {"up": True, "link_mbps": 1000}),
    ]


def devices(ts: float, online: bool) -> list[Sample]:
    """One av check of every panel."""
    ms = int(ts * 1000)
    return [Sample("av", ms, {"device": d, "classroom": d.removeprefix("panel-"),
                              "device_type": "panel"}, {"online": online}) for d in DEVICES]


def observe(eng: AlertEngine, clock: FakeClock, ts: float, *, up: bool, online: bool) -> None:
    """The gateway reports its uplink and every panel at ``ts``."""
    clock.now = ts
    eng.observe(GATEWAY, uplink(ts, up) + devices(ts, online))
