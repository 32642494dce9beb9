"""Streaming per-school state: what the samples of one school say, kept bounded.

Fed sample by sample (in the collector's writer thread, after storage); read by metrics.py.
Counters only count a sample newer than the last one of its series, so a re-delivered batch
(delivery is at-least-once) is not counted twice.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from collector.inventory import School
from collector.rules.window import BucketGeometry, RingCounter
from common.timetable import SchoolCalendar
from common.vocab import BROWSER_METHOD, EDU_ROLE, INTERNET_ROLE, WLAN
from common.wire import Sample

_MAX_BACKBONE_PORTS = 4096
_MAX_ROOMS = 2000
_MAX_TARGETS = 256
# The fields each kind's handler below reads. restore.py selects exactly these from storage, so
# a field read here is a field restored (tests/unit/test_rules_restore.py holds them together).
READ_FIELDS: dict[str, tuple[str, ...]] = {
    "av": ("online",),
    "wifi": ("rssi_dbm",),
    "speedtest": ("down_mbps", "up_mbps", "bytes", "duration_s", "method"),
    "reach": ("up",),
    "iface": ("link_mbps", "up"),
    "netdev_if": ("speed_mbps", "up"),
}
# The tags each kind's handler reads (besides the agent's identity): what a restore from a state
# snapshot selects as columns (gap.py).
READ_TAGS: dict[str, tuple[str, ...]] = {
    "av": ("device", "classroom", "device_type"),
    "wifi": ("classroom",),
    "speedtest": ("server",),
    "reach": ("target", "target_role"),
    "iface": ("role",),
    "netdev_if": ("device", "ifname"),
}
# Evidence a speed test needs to count (issue 18): a result over fewer bytes or less time is no
# measurement of the link (a server that broke off, a budget nearly spent).  Absent fields (older
# agents) are not held against a result.
MIN_SPEEDTEST_BYTES = 1 << 20
MIN_SPEEDTEST_S = 1.0


@dataclass(frozen=True)
class StateLimits:
    """Engine-wide choices the state needs while ingesting."""

    geometry: BucketGeometry
    wifi_rssi_dbm: float
    max_speedtests: int
    max_devices: int
    # URL prefixes of speed-test servers outside the education network (internet evidence)
    internet_servers: tuple[str, ...] = ()


class DeviceState:
    """One classroom device: last reading and school-hour uptime buckets."""

    __slots__ = ("classroom", "counter", "last_ms", "type", "up")

    def __init__(self, classroom: str, type_: str, ring: int) -> None:
        self.classroom = classroom
        self.type = type_
        self.up: bool | None = None
        self.last_ms: int | None = None
        self.counter = RingCounter(ring)


class RoomWifi:
    """One classroom's Wi-Fi: the last scan's best RSSI and school-hour coverage buckets."""

    __slots__ = ("best", "counted", "counter", "hit", "last_ms")

    def __init__(self, ring: int) -> None:
        self.last_ms = -1
        self.best = -math.inf
        self.counted = False  # the last scan fell in school hours and was counted
        self.hit = False
        self.counter = RingCounter(ring)


class PathEvidence:
    """The newest evidence that a network path works: (time, up), any target up at that time."""

    __slots__ = ("ms", "up")

    def __init__(self) -> None:
        self.ms = -1
        self.up = False

    def add(self, ts_ms: int, up: bool) -> None:
        """Take one observation; an older one than the newest is ignored."""
        if ts_ms > self.ms:
            self.ms, self.up = ts_ms, up
        elif ts_ms == self.ms:
            self.up = self.up or up  # any target reachable at that moment


class AgentState:
    """When an agent was last heard, and its retained status."""

    __slots__ = ("classroom", "last_ms", "status", "status_ms")

    def __init__(self, classroom: str | None) -> None:
        self.classroom = classroom
        self.last_ms: int | None = None  # newest sample time or receipt time
        self.status: str | None = None
        self.status_ms: int | None = None


class SchoolState:
    """Everything the engine keeps about one inventory school."""

    def __init__(self, school: School, hours: SchoolCalendar, limits: StateLimits) -> None:
        self.school = school
        self.hours = hours
        self.limits = limits
        ring = limits.geometry.ring
        # (ts_ms, down_mbps, up_mbps or nan) of successful speed tests, oldest first
        self.speedtests: deque[tuple[int, float, float]] = deque(maxlen=limits.max_speedtests)
        self.devices: dict[str, DeviceState] = {
            d.id: DeviceState(d.classroom, d.type, ring) for d in school.devices}
        self.wifi: dict[str, RoomWifi] = {}
        self.internet = PathEvidence()  # the internet itself
        self.edu = PathEvidence()  # the education network (district hub, its speed-test server)
        self.targets: dict[str, tuple[int, bool]] = {}  # reach target -> newest (ts, up)
        self.links: dict[str, tuple[int, float]] = {}  # classroom -> (ts, link Mbit/s)
        self.backbone: dict[tuple[str, str], tuple[int, float]] = {}
        self.agents: dict[str, AgentState] = {}
        self.last_seen_ms: int | None = None

    def agent(self, agent_id: str, classroom: str | None = None) -> AgentState:
        """The state of one agent (created on first use)."""
        state = self.agents.get(agent_id)
        if state is None:
            state = self.agents[agent_id] = AgentState(classroom)
        return state

    def add(self, agent: AgentState, samples: list[Sample], received_ms: int) -> None:
        """Take in one batch of an agent of this school."""
        newest = received_ms
        for s in samples:
            newest = max(newest, s.ts_ms)
            kind = s.kind
            if kind == "av":
                self._av(s)
            elif kind == "wifi":
                self._wifi(s)
            elif kind == "speedtest":
                self._speedtest(s)
            elif kind == "reach":
                self._reach(s)
            elif kind == "iface":
                if agent.classroom is not None:
                    self._link(agent.classroom, s)
            elif kind == "netdev_if":
                self._port(s)
        agent.last_ms = max(agent.last_ms or 0, newest)
        self.last_seen_ms = max(self.last_seen_ms or 0, newest)

    def _av(self, s: Sample) -> None:
        device_id = s.tags.get("device")
        online = s.flag("online")
        if device_id is None or not isinstance(online, bool):
            return
        dev = self.devices.get(device_id)
        if dev is None:
            if len(self.devices) >= self.limits.max_devices:
                return
            dev = self.devices[device_id] = DeviceState(
                s.tags.get("classroom", ""), s.tags.get("device_type", "other"),
                self.limits.geometry.ring)
        if dev.last_ms is not None and s.ts_ms <= dev.last_ms:
            return  # re-delivered or out of order: already counted
        dev.last_ms, dev.up = s.ts_ms, online
        if self.hours.is_school_time(s.ts_ms):
            dev.counter.add(self.limits.geometry.bucket(s.ts_ms), online)

    def _wifi(self, s: Sample) -> None:
        room_id = s.tags.get("classroom")
        rssi = s.number("rssi_dbm")
        if room_id is None or rssi is None:
            return
        room = self.wifi.get(room_id)
        if room is None:
            if len(self.wifi) >= _MAX_ROOMS:
                return
            room = self.wifi[room_id] = RoomWifi(self.limits.geometry.ring)
        good = rssi >= self.limits.wifi_rssi_dbm
        bucket = self.limits.geometry.bucket(s.ts_ms)
        if s.ts_ms == room.last_ms:  # another BSSID of the same scan: keep the best
            room.best = max(room.best, rssi)
            if good and room.counted and not room.hit:
                room.counter.add_hit(bucket)
            room.hit = room.hit or good
        elif s.ts_ms > room.last_ms:  # a new scan
            room.last_ms, room.best, room.hit = s.ts_ms, rssi, good
            room.counted = self.hours.is_school_time(s.ts_ms) and room.counter.add(bucket, good)

    def _speedtest(self, s: Sample) -> None:
        if s.text("method") == BROWSER_METHOD:
            # A classroom PC's test measures that room's Wi-Fi and switch as well as the
            # uplink: one weak room must not make a 1000M school look like a 100M one.
            return
        down = s.number("down_mbps")
        if down is None or down <= 0:
            return
        moved, took = s.number("bytes"), s.number("duration_s")
        if (moved is not None and moved < MIN_SPEEDTEST_BYTES) or (
                took is not None and took < MIN_SPEEDTEST_S):
            return  # too thin to judge a school by
        if any(t == s.ts_ms for t, _d, _u in self.speedtests):
            return  # re-delivered
        up = s.number("up_mbps")
        entry = (s.ts_ms, down, math.nan if up is None else up)
        if self.speedtests and s.ts_ms < self.speedtests[-1][0]:
            ordered = sorted([*self.speedtests, entry])
            self.speedtests.clear()
            self.speedtests.extend(ordered)
        else:
            self.speedtests.append(entry)
        server = s.tags.get("server", "")
        if any(server.startswith(prefix) for prefix in self.limits.internet_servers):
            self.internet.add(s.ts_ms, True)
        else:  # the district's server: the education network, not the internet
            self.edu.add(s.ts_ms, True)

    def _reach(self, s: Sample) -> None:
        up = s.flag("up") is True
        role = s.tags.get("target_role")
        if role == INTERNET_ROLE:
            self.internet.add(s.ts_ms, up)
        elif role == EDU_ROLE:
            self.edu.add(s.ts_ms, up)
        name = s.tags.get("target")
        if name is not None and (name in self.targets or len(self.targets) < _MAX_TARGETS):
            ts, old = self.targets.get(name, (-1, False))
            if s.ts_ms > ts:
                self.targets[name] = (s.ts_ms, up)
            elif s.ts_ms == ts:
                self.targets[name] = (ts, old or up)

    def _link(self, classroom: str, s: Sample) -> None:
        link = s.number("link_mbps")
        if s.tags.get("role") == WLAN or s.flag("up") is not True or link is None:
            return
        ts, old = self.links.get(classroom, (-1, 0.0))
        if s.ts_ms > ts:
            self.links[classroom] = (s.ts_ms, link)
        elif s.ts_ms == ts:
            self.links[classroom] = (ts, max(old, link))

    def _port(self, s: Sample) -> None:
        key = (s.tags.get("device", ""), s.tags.get("ifname", ""))
        speed = s.number("speed_mbps")
        if s.flag("up") is not True:
            speed = 0.0  # a port that is down carries nothing: 0, not missing data
        elif speed is None:
            return
        old = self.backbone.get(key)
        if old is not None and s.ts_ms < old[0]:
            return  # the newest reading wins, whatever the arrival order (a spooled backlog)
        if old is not None or len(self.backbone) < _MAX_BACKBONE_PORTS:
            self.backbone[key] = (s.ts_ms, speed)
