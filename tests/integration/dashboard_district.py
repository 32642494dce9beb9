"""A small realistic district for the dashboard test: the samples agents would send.

Five schools, one in each access tier, over the last two hours at 5-minute steps: gateway
agents (iface, host, reach, netdev, netdev_if, ap, speedtest, agent) and classroom PCs (av with
a projector and a panel, wifi, host, agent). Plus the inventory and the `compliance` points
the rules engine writes (tags rule, policy, scope, district, school; fields value, target,
met, state).
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.inventory import Inventory
from collector.storage.lineprotocol import format_line
from common.figures import RATE_TOLERANCE_PCT, meets
from common.wire import AgentIdentity, FieldValue, Sample

DISTRICT = "gz-th"
STEP_MS = 5 * 60_000
STEPS = 24  # two hours


@dataclass(frozen=True)
class SimSchool:
    """A school of the simulated district and the download rate it measures."""

    id: str
    category: str
    contract: float
    down_mbps: float
    classrooms: tuple[str, ...]
    location: tuple[float, float] | None


SCHOOLS = (
    SimSchool("gz-th-001", "urban", 1000, 940.0, ("301", "302"), (23.125, 113.361)),
    SimSchool("gz-th-002", "urban", 300, 250.0, ("101",), (23.14, 113.33)),
    SimSchool("gz-th-003", "rural", 50, 45.0, (), (23.2, 113.4)),
    SimSchool("gz-th-tp-04", "teaching_point", 8, 6.0, (), (23.25, 113.45)),
    SimSchool("gz-th-tp-05", "teaching_point", 4, 2.0, (), None),
)
OFFLINE_AGENT = "gz-th-tp-05-gw"


def inventory() -> Inventory:
    """The inventory of the simulated district."""
    schools = []
    for s in SCHOOLS:
        school: dict[str, object] = {
            "id": s.id, "name": f"School {s.id}", "district": DISTRICT, "category": s.category,
            "classes": 12, "contracted_mbps": s.contract,
            "classrooms": [{"id": c} for c in s.classrooms]}
        if s.location:
            school["location"] = {"lat": s.location[0], "lon": s.location[1]}
        schools.append(school)
    agents = [{"id": f"{s.id}-gw", "school": s.id} for s in SCHOOLS]
    agents += [{"id": f"{s.id}-pc{c}", "school": s.id, "role": "classroom_pc", "classroom": c}
               for s in SCHOOLS for c in s.classrooms]
    return Inventory.model_validate({"districts": [{"id": DISTRICT, "name": "Tianhe"}],
                                     "schools": schools, "agents": agents})


def _health(ts: int, i: int) -> Sample:
    return Sample("agent", ts, {}, {"rss_mb": 40.0 + i % 3, "cpu_pct": 1.5,
                                    "spool_depth": float(i % 4), "spool_bytes": 4096 * (i % 4),
                                    "dropped_total": i // 6, "probe_errors": i // 4,
                                    # The fleet panel's fields (agent/runner.py).
                                    "version": "0.1.0", "config_hash": "3f2a9c0d1e7b",
                                    "started_s": ts // 1000 - 3600})


def gateway_samples(school: SimSchool, start_ms: int) -> list[Sample]:
    """What a school gateway agent sends over the period."""
    out: list[Sample] = []
    for i in range(STEPS):
        ts = start_ms + i * STEP_MS
        load = school.contract * 1e6 * (0.2 + 0.03 * (i % 10))
        out += [
            Sample("iface", ts, {"iface": "eth0", "role": "wan"},
                   {"rx_bps": load, "tx_bps": load / 8, "link_mbps": 1000, "up": True}),
            Sample("iface", ts, {"iface": "eth1", "role": "lan"},
                   {"rx_bps": load / 8, "tx_bps": load, "link_mbps": 1000, "up": True}),
            Sample("host", ts, {}, {"uptime_s": 86400 + i * 300, "cpu_pct": 7.5,
                                    "mem_pct": 35.0, "disk_pct": 41.0}),
            Sample("netdev", ts, {"device": "core-sw", "source": "snmp"},
                   {"up": True, "uptime_s": 864000 + i * 300}),
            Sample("netdev_if", ts, {"device": "core-sw", "ifname": "GE0/0/1", "source": "snmp"},
                   {"in_bps": load, "out_bps": load / 4, "speed_mbps": 1000, "up": True}),
            _health(ts, i),
        ]
        for target, role, rtt in (("gateway", "gateway", 0.6), ("district-hub", "district", 4.0),
                                  ("dns", "dns", 12.0)):
            up = not (school.id.endswith("05") and i > 20)
            out.append(Sample("reach", ts, {"target": target, "target_role": role,
                                            "method": "icmp"},
                              {"up": up, "rtt_ms": rtt + i % 3, "loss_pct": 0.0 if up else 100.0,
                               "jitter_ms": 0.3}))
        for ap, clients in (("AP-Teach-301", 18), ("AP-Teach-302", 9)):
            online = not (ap.endswith("302") and i > 18)
            out.append(Sample("ap", ts, {"ap": ap, "controller": "ac-1"},
                              {"online": online, "clients": clients if online else 0}))
        if i % 6 == 3:  # a speed test every 30 minutes
            out.append(Sample("speedtest", ts + 1000, {"server": "http://10.20.0.5:8080"},
                              {"down_mbps": school.down_mbps * (0.97 + 0.01 * (i % 4)),
                               "up_mbps": school.down_mbps / 4, "rtt_ms": 5.0,
                               "jitter_ms": 0.5, "bytes": 1.2e8, "duration_s": 20.0}))
    return out


def classroom_samples(room: str, start_ms: int) -> list[Sample]:
    """What a classroom PC agent sends: its projector, panel and Wi-Fi."""
    out: list[Sample] = []
    weak = room == "302"  # a room at the end of the corridor: poor Wi-Fi
    for i in range(STEPS):
        ts = start_ms + i * STEP_MS
        proj = {"device": f"proj-{room}", "classroom": room, "device_type": "projector"}
        if i % 8 == 7:
            out.append(Sample("av", ts, proj, {"online": False}))
        else:
            out.append(Sample("av", ts, proj, {
                "online": True, "power": "on" if i > 2 else "warming",
                "lamp_hours": 3200.0 + i / 12, "err_fan": 0, "err_lamp": 1 if weak else 0,
                "err_temp": 0, "err_cover": 0, "err_filter": 2 if weak else 0, "err_other": 0}))
        out.append(Sample("av", ts, {"device": f"panel-{room}", "classroom": room,
                                     "device_type": "panel"}, {"online": i % 5 != 0}))
        for bssid, rssi in (("00:19:a9:cd:c6:80", -58.0), ("d0:d0:fd:69:ca:70", -71.0)):
            out.append(Sample("wifi", ts, {"classroom": room, "ssid": "School-WiFi",
                                           "bssid": bssid, "band": "5GHz"},
                              {"rssi_dbm": rssi - (20 if weak else 0) - i % 3, "channel": 36,
                               "connected": bssid.startswith("00")}))
        out += [Sample("host", ts, {}, {"uptime_s": 7200 + i * 300, "cpu_pct": 3.0,
                                        "mem_pct": 55.0, "disk_pct": 60.0}),
                _health(ts, i)]
    return out


def agent_samples(start_ms: int) -> dict[AgentIdentity, list[Sample]]:
    """Every agent of the district and its samples."""
    out: dict[AgentIdentity, list[Sample]] = {}
    for school in SCHOOLS:
        out[AgentIdentity(DISTRICT, school.id, f"{school.id}-gw")] = gateway_samples(
            school, start_ms)
        for room in school.classrooms:
            out[AgentIdentity(DISTRICT, school.id, f"{school.id}-pc{room}")] = \
                classroom_samples(room, start_ms)
    return out


RULE_TARGETS = {"access_10m": 10.0, "access_100m": 100.0, "access_1000m": 1000.0}


def compliance_lines(now_ms: int) -> list[str]:
    """What the rules engine writes: per school and rule, and the district roll-ups."""
    lines = []
    for ts in (now_ms - 3_600_000, now_ms - 600_000):
        met_count = dict.fromkeys(RULE_TARGETS, 0)
        for school in SCHOOLS:
            # The rate tolerance counts (TCP goodput), as the rules and the tier panel do.
            for rule, target in RULE_TARGETS.items():
                met = meets(school.down_mbps, target, RATE_TOLERANCE_PCT)
                met_count[rule] += met
                lines.append(_compliance(rule, "school", school.id, school.down_mbps, target,
                                         met=met, ts=ts))
            if school.classrooms:
                lines.append(_compliance("multimedia_ratio", "school", school.id, 87.5, 80.0,
                                         met=True, ts=ts))
                lines.append(_compliance("wireless_campus", "school", school.id, 50.0, 100.0,
                                         met=False, ts=ts))
        for rule, count in met_count.items():
            share = 100.0 * count / len(SCHOOLS)
            target = 70.0 if rule == "access_10m" else 100.0
            lines.append(_compliance(rule, "district_share", None, share, target,
                                     met=share >= target, ts=ts))
        lines.append(_compliance("multimedia_ratio", "district_share", None, 85.0, 80.0,
                                 met=True, ts=ts))
    return lines


def _compliance(rule: str, scope: str, school: str | None, value: float, target: float, *,
                met: bool, ts: int) -> str:
    tags = {"rule": rule, "policy": "cn-moe-2017", "scope": scope, "district": DISTRICT}
    if school:
        tags["school"] = school
    fields: dict[str, FieldValue] = {"value": value, "target": target, "met": met,
                                     "state": "ok" if met else "missed"}
    return format_line("compliance", tags, fields, ts)
