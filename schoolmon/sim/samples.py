"""Realistic samples of one virtual school's agents, the same for the same seed and time.

Values follow what the real probes send (docs/probes.md): traffic with a school-day curve,
reachability with per-school latency, speed tests inside the school's planned range, PJLink
projectors and panels up or down by a per-day schedule, Wi-Fi scans around a per-room level.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from common.wire import FieldValue, Sample
from schoolmon.sim.plan import ClassroomPlan, SchoolPlan
from schoolmon.sim.spec import SimulationSpec
from schoolmon.sim.timeline import days_between, local_date, midnight_ms, school_ticks

REF_MS = 1_735_689_600_000  # 2025-01-01: origin of cumulative counters and lamp hours


@dataclass(frozen=True)
class TickInfo:
    """One sample time, with what every school needs to know about it."""

    ts_ms: int
    day: dt.date
    hour: float  # local hour of day, 0..24
    school_index: int | None  # position among the day's school-hour ticks; None outside
    school_count: int


class Calendar:
    """Turns sample times into TickInfo (one time zone and timetable for the district)."""

    def __init__(self, spec: SimulationSpec, step_s: float) -> None:
        self.spec, self.step_s = spec, step_s
        self._days: dict[dt.date, tuple[int, dict[int, int]]] = {}

    def school_ticks(self, day: dt.date) -> list[int]:
        """The school-hour ticks of ``day``."""
        return school_ticks(self.spec.timetable, day, self.step_s)

    def grid(self, start_ms: int, end_ms: int) -> list[int]:
        """Grid times in [start_ms, end_ms): ``local midnight + k * step`` of each day."""
        tt, step = self.spec.timetable, int(self.step_s * 1000)
        ticks: list[int] = []
        for day in days_between(local_date(tt, start_ms), local_date(tt, max(start_ms,
                                                                               end_ms - 1))):
            base, stop = midnight_ms(tt, day), midnight_ms(tt, day + dt.timedelta(days=1))
            first = base + max(0, -(-(start_ms - base) // step)) * step
            ticks.extend(range(first, min(stop, end_ms), step))
        return ticks

    def info(self, ts_ms: int) -> TickInfo:
        """TickInfo of a grid time."""
        day = local_date(self.spec.timetable, ts_ms)
        if day not in self._days:
            ticks = self.school_ticks(day)
            self._days[day] = (midnight_ms(self.spec.timetable, day),
                               {t: i for i, t in enumerate(ticks)})
        base, index = self._days[day]
        return TickInfo(ts_ms, day, (ts_ms - base) / 3_600_000, index.get(ts_ms), len(index))


def traffic_curve(hour: float, school_day: bool) -> float:
    """Share of the school's usual peak traffic at a local hour (morning and afternoon peaks)."""
    if not school_day:
        return 0.04 + 0.02 * math.sin(hour / 24 * math.pi)
    morning = math.exp(-((hour - 9.5) ** 2) / (2 * 1.3**2))
    afternoon = 0.8 * math.exp(-((hour - 15.0) ** 2) / (2 * 1.2**2))
    return min(1.0, 0.05 + morning + afternoon)


def _bssid(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256) & (0xFC if i == 0 else 0xFF):02x}" for i in range(6))


@dataclass
class _Static:
    """Per-school constants drawn once from the seed."""

    rtt_district: float
    rtt_internet: float
    utilization: float
    up_ratio: float
    boot_ms: int
    disk_pct: float
    lamp_base: dict[str, float] = field(default_factory=dict)
    filter_warning: set[str] = field(default_factory=set)
    wifi: dict[str, tuple[float, list[tuple[str, int]]]] = field(default_factory=dict)


class SchoolSim:
    """Sample generator for one school's gateway and classroom agents."""

    def __init__(self, seed: int, spec: SimulationSpec, school: SchoolPlan,
                 outage_from_ms: int | None) -> None:
        self.seed, self.spec, self.school = seed, spec, school
        self.outage_from_ms = outage_from_ms if school.internet_outage else None
        rng = self._rng("static")
        satellite = school.category == "teaching_point" and rng.random() < 0.2
        district = {"urban": (1, 5), "rural": (3, 12), "teaching_point": (8, 30)}[school.category]
        rtt = rng.uniform(550, 650) if satellite else rng.uniform(*district)
        self.static = _Static(
            rtt_district=rtt, rtt_internet=rtt + rng.uniform(15, 35),
            utilization=rng.uniform(0.3, 0.7),
            up_ratio=rng.uniform(0.9, 1.0) if school.category == "urban" else rng.uniform(0.3, 0.6),
            boot_ms=REF_MS - rng.randrange(86_400_000 * 30), disk_pct=rng.uniform(20, 40))
        for room in school.classrooms:
            self.static.lamp_base[room.id] = rng.uniform(200, 3800)
            if rng.random() < 0.1:
                self.static.filter_warning.add(room.id)
            if room.wifi_good is not None:
                level = rng.uniform(-62, -48) if room.wifi_good else rng.uniform(-82, -71)
                radios = [(_bssid(rng), rng.choice((1, 6, 11, 36, 44, 149, 157)))
                          for _ in range(rng.randint(1, 3))]
                self.static.wifi[room.id] = (level, radios)
        self._days: dict[dt.date, tuple[dict[str, list[bool]], set[int]]] = {}

    def _rng(self, *parts: object) -> random.Random:
        return random.Random("/".join(str(p) for p in (self.seed, self.school.id, *parts)))

    def _day(self, tick: TickInfo) -> tuple[dict[str, list[bool]], set[int]]:
        """Per-day schedule: each device's up/down per school tick, speed-test ticks."""
        if tick.day not in self._days:
            n = tick.school_count
            rng = self._rng("day", tick.day.isoformat())
            online = {room.id: self._device_day(rng, room.multimedia_ok, n)
                      for room in self.school.classrooms}
            tests = self.school.down_mbps_range is not None and n > 0
            slots = set(rng.sample(range(n), min(n, self.spec.speedtests_per_day))) if tests \
                else set()
            self._days[tick.day] = (online, slots)
        return self._days[tick.day]

    def _device_day(self, rng: random.Random, works: bool, n: int) -> list[bool]:
        """Up/down per tick: one contiguous outage within the planned bounds."""
        if works:
            down = rng.randint(0, math.floor(n * (1 - self.spec.working_uptime_min) + 1e-9))
        else:
            down = n - rng.randint(0, math.floor(n * self.spec.broken_uptime_max + 1e-9))
        start = rng.randint(0, n - down) if n else 0
        return [not start <= i < start + down for i in range(n)]

    def _outage(self, ts_ms: int) -> bool:
        return self.outage_from_ms is not None and ts_ms >= self.outage_from_ms

    def gateway(self, tick: TickInfo) -> list[Sample]:
        """The gateway's samples at one tick (it runs day and night)."""
        s, ts, rng = self.static, tick.ts_ms, self._rng("gw", tick.ts_ms)
        school = self.school
        cap = school.down_mbps_range[1] if school.down_mbps_range else school.contracted_mbps
        load = traffic_curve(tick.hour, tick.school_count > 0) * rng.uniform(0.85, 1.15)
        down = self._outage(ts)
        rx = cap * 1e6 * s.utilization * load * (0.02 if down else 1.0)
        tx = rx * rng.uniform(0.1, 0.25)
        hours = (ts - REF_MS) / 3_600_000
        out = [
            Sample("iface", ts, {"iface": "eth0", "role": "wan"},
                   {"rx_bps": round(rx, 1), "tx_bps": round(tx, 1), "link_mbps": school.link_mbps,
                    "up": True, "errors": int(hours * 0.2), "drops": int(hours * 0.5)}),
            Sample("iface", ts, {"iface": "eth1", "role": "lan"},
                   {"rx_bps": round(tx * 1.02, 1), "tx_bps": round(rx * 1.01, 1),
                    "link_mbps": 1000, "up": True, "errors": 0, "drops": 0}),
            Sample("host", ts, {}, {"uptime_s": (ts - s.boot_ms) // 1000,
                                    "cpu_pct": round(3 + 25 * load + rng.uniform(0, 4), 1),
                                    "mem_pct": round(rng.uniform(35, 45), 1),
                                    "disk_pct": round(s.disk_pct, 1)}),
            # An outage is the school's uplink going down: neither target answers.
            self._reach(rng, ts, "district-hub", role="district", method="icmp",
                        rtt=s.rtt_district, up=not down),
            self._reach(rng, ts, "internet", role="internet", method="tcp",
                        rtt=s.rtt_internet, up=not down),
            _agent_sample(rng, ts),
        ]
        if tick.school_index is not None:
            online, slots = self._day(tick)
            if tick.school_index in slots and school.down_mbps_range and not down:
                out.append(self._speedtest(rng, ts))
            for room in school.classrooms:
                if room.agent is None:  # checked by the gateway (icmp)
                    out.append(_av(room, ts, online[room.id][tick.school_index], rng,
                                   lamp_base=0.0, filter_warning=False))
        return out

    def _reach(self, rng: random.Random, ts: int, target: str, *, role: str, method: str,
               rtt: float, up: bool) -> Sample:
        tags = {"target": target, "target_role": role, "method": method}
        if not up:
            return Sample("reach", ts, tags, {"up": False, "loss_pct": 100.0})
        mean = rtt * rng.uniform(0.9, 1.3)
        return Sample("reach", ts, tags, {
            "up": True, "loss_pct": 20.0 if rng.random() < 0.03 else 0.0,
            "rtt_ms": round(mean, 3), "rtt_min_ms": round(mean * 0.9, 3),
            "rtt_max_ms": round(mean * 1.2, 3), "jitter_ms": round(mean * 0.05, 3)})

    def _speedtest(self, rng: random.Random, ts: int) -> Sample:
        low, high = self.school.down_mbps_range or (0.0, 0.0)
        down = round(rng.uniform(low, high), 3)
        up = round(down * self.static.up_ratio, 3)
        return Sample("speedtest", ts, {"server": self.spec.speedtest_server}, {
            "down_mbps": down, "up_mbps": up,
            "rtt_ms": round(self.static.rtt_district * rng.uniform(0.9, 1.2), 3),
            "jitter_ms": round(rng.uniform(0.1, 2.0), 3),
            "bytes": int((down + up) * 1e6 / 8 * 7.5), "duration_s": round(rng.uniform(20, 22), 3)})

    def classroom(self, room: ClassroomPlan, tick: TickInfo) -> list[Sample]:
        """A classroom PC agent's samples at a school-hour tick (none outside school hours)."""
        if tick.school_index is None or room.agent is None:
            return []
        ts, rng = tick.ts_ms, self._rng(room.id, tick.ts_ms)
        online, _slots = self._day(tick)
        up = online[room.id][tick.school_index]
        out = [_av(room, ts, up, rng, lamp_base=self.static.lamp_base[room.id],
                   filter_warning=room.id in self.static.filter_warning)]
        out.extend(self._wifi(room, ts, rng))
        out.append(Sample("host", ts, {}, {
            "uptime_s": max(60, int((tick.hour - 7.0) * 3600)),  # PCs are switched on at 7:00
            "cpu_pct": round(rng.uniform(5, 60), 1), "mem_pct": round(rng.uniform(30, 80), 1),
            "disk_pct": round(self.static.disk_pct + 20, 1)}))
        out.append(_agent_sample(rng, ts))
        return out

    def _wifi(self, room: ClassroomPlan, ts: int, rng: random.Random) -> list[Sample]:
        level, radios = self.static.wifi[room.id]
        # Good rooms never drop below -66 dBm, poor ones never rise above -68 dBm.
        low, high = (-66.0, -35.0) if room.wifi_good else (-95.0, -68.0)
        best = min(high, max(low, level + rng.gauss(0, 2.5)))
        out = []
        for i, (bssid, channel) in enumerate(radios):
            rssi = best if i == 0 else max(-95.0, best - rng.uniform(4, 15))
            fields: dict[str, FieldValue] = {"rssi_dbm": round(rssi, 1), "channel": channel,
                                             "connected": i == 0}
            band = "2.4GHz" if channel <= 14 else "5GHz"
            out.append(Sample("wifi", ts, {"classroom": room.id, "ssid": self.spec.school_ssid,
                                           "bssid": bssid, "band": band}, fields))
        return out


def _av(room: ClassroomPlan, ts: int, up: bool, rng: random.Random, *, lamp_base: float,
        filter_warning: bool) -> Sample:
    tags = {"device": room.device_id, "classroom": room.id, "device_type": room.device_type}
    if not up:
        return Sample("av", ts, tags, {"online": False})
    if room.device_type != "projector":
        return Sample("av", ts, tags, {"online": True, "rtt_ms": round(rng.uniform(0.3, 3), 3)})
    lamp = int(lamp_base + (ts - REF_MS) / 3_600_000 * 0.3)
    errors = dict.fromkeys(("err_fan", "err_lamp", "err_temp", "err_cover", "err_filter",
                            "err_other"), 0)
    if room.multimedia_ok:
        power = "on"
        errors["err_filter"] = 1 if filter_warning else 0  # a warning: still projects
    else:  # answers PJLink but cannot project: lamp failure
        power, errors["err_lamp"] = "off", 2
    return Sample("av", ts, tags, {"online": True, "power": power, "lamp_hours": lamp, **errors})


def _agent_sample(rng: random.Random, ts: int) -> Sample:
    return Sample("agent", ts, {}, {
        "rss_mb": round(rng.uniform(30, 40), 1), "cpu_pct": round(rng.uniform(0.2, 2), 2),
        "spool_depth": 0, "spool_bytes": 0, "dropped_total": 0, "probe_errors": 0})
