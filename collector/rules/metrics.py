"""Metric values of one school at one instant, computed from its state (docs/policies.md).

A :class:`MetricContext` lives for one evaluation pass of one school and caches each
(metric, window, statistic), so twenty rules on access bandwidth sort the speed tests once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from collector.rules.settings import RulesSettings
from collector.rules.state import PathEvidence, SchoolState
from common.figures import quotient, statistic

RoomValues = dict[str, float | None]


class MetricContext:
    """Metrics of one school at ``now_ms``."""

    def __init__(self, state: SchoolState, settings: RulesSettings, now_ms: int) -> None:
        self.state = state
        self.settings = settings
        self.now_ms = now_ms
        self._cache: dict[tuple[str, int, str], float | None] = {}
        self._room_cache: dict[tuple[str, int], RoomValues] = {}
        school = state.school
        ordinary = [c.id for c in school.classrooms if c.ordinary]
        self._rooms_listed = bool(school.classrooms)
        self.ordinary_rooms = ordinary

    # --- school values -------------------------------------------------------------------

    def value(self, metric: str, window_ms: int, stat: str | None = None) -> float | None:
        """The school's value of a school-scope metric; None: no data."""
        key = (metric, window_ms, stat or "")
        if key not in self._cache:
            self._cache[key] = self._compute(metric, window_ms, stat or self.settings.percentile)
        return self._cache[key]

    def _compute(self, metric: str, window_ms: int, stat: str) -> float | None:
        school = self.state.school
        simple: dict[str, Callable[[], float | None]] = {
            "internet_up": lambda: self._path(self.state.internet, window_ms),
            "edu_network_up": lambda: self._path(self.state.edu, window_ms),
            "class_link_mbps": lambda: _min(self.room_values(metric, window_ms)),
            "backbone_mbps": lambda: self._backbone(window_ms),
            "multimedia_ratio": lambda: self._multimedia_ratio(window_ms),
            "all_classrooms_equipped": lambda: self._all_equipped(window_ms),
            "wifi_coverage": lambda: self._wifi_coverage(window_ms),
            "agent_fresh": lambda: self._agents_fresh(window_ms),
        }
        if metric in simple:
            return simple[metric]()
        if metric == "access_up_mbps":
            return self._speed(window_ms, stat, upload=True)
        access = self._speed(window_ms, stat, upload=False)
        if access is None or metric == "access_mbps":
            return access
        # Exact quotients: 27.6 Mbit/s over 3 classes is 9.2 per class, as by hand.
        if metric == "per_class_mbps":
            return quotient(access, school.classes)
        if metric == "per_student_mbps":
            return quotient(access, school.students) if school.students else None
        if metric == "isp_ratio":
            return (quotient(access, school.contracted_mbps, 100) if school.contracted_mbps
                    else None)
        raise ValueError(f"unknown metric {metric!r}")

    def _since(self, window_ms: int) -> int:
        return self.now_ms - window_ms

    def _speed(self, window_ms: int, stat: str, upload: bool) -> float | None:
        since = self._since(window_ms)
        values = [(u if upload else d) for t, d, u in self.state.speedtests if t >= since]
        values = [v for v in values if not math.isnan(v)]
        return statistic(values, stat) if values else None

    def _path(self, evidence: PathEvidence, window_ms: int) -> float | None:
        if evidence.ms < self._since(window_ms):
            return None
        return 1.0 if evidence.up else 0.0

    def targets_up(self, names: list[str], window_ms: int) -> float | None:
        """100 x named reach targets whose newest check in the window was up / named targets."""
        since = self._since(window_ms)
        seen = [self.state.targets.get(n, (-1, False)) for n in names]
        if all(ts < since for ts, _up in seen):
            return None
        return 100.0 * sum(1 for ts, up in seen if ts >= since and up) / len(names)

    def _backbone(self, window_ms: int) -> float | None:
        since = self._since(window_ms)
        speeds = [v for t, v in self.state.backbone.values() if t >= since]
        return max(speeds) if speeds else None

    def _equipped_rooms(self, window_ms: int) -> tuple[int, int, int] | None:
        """(rooms with working multimedia, rooms with data, rooms without); None: no data.

        The same counts as the district share of ``multimedia_uptime``: an ordinary room with
        no multimedia device counts (as 0 %), one whose devices sent no school-hour sample
        does not, so the school ratio and the district share agree.
        """
        uptime = self.room_values("multimedia_uptime", window_ms)
        known = [v for v in uptime.values() if v is not None]
        if not known:
            return None
        limit = self.settings.uptime_threshold_pct
        return sum(1 for v in known if v >= limit), len(known), len(uptime) - len(known)

    def _multimedia_ratio(self, window_ms: int) -> float | None:
        counts = self._equipped_rooms(window_ms)
        return None if counts is None else 100.0 * counts[0] / counts[1]

    def _all_equipped(self, window_ms: int) -> float | None:
        counts = self._equipped_rooms(window_ms)
        if counts is None or (counts[0] == counts[1] and counts[2]):
            return None  # all rooms with data work, but some have none: not known
        return float(counts[0] == counts[1])

    def _wifi_coverage(self, window_ms: int) -> float | None:
        good = self.room_values("wifi_good_pct", window_ms)
        if all(v is None for v in good.values()):
            return None
        rooms = self.ordinary_rooms if self._rooms_listed else list(good)
        limit = self.settings.wifi_good_pct
        covered = sum(1 for r in rooms if (v := good.get(r)) is not None and v >= limit)
        return 100.0 * covered / len(rooms) if rooms else None

    def _agents_fresh(self, window_ms: int) -> float | None:
        flags = self.agent_freshness(window_ms)
        return 100.0 * sum(flags.values()) / len(flags) if flags else None

    def agent_freshness(self, window_ms: int) -> dict[str, bool]:
        """Per agent: heard within the window and not gone offline since."""
        since = self._since(window_ms)
        result = {}
        for agent_id, a in self.state.agents.items():
            online_ms = (a.status_ms or -1) if a.status == "online" else -1
            heard = max(a.last_ms or -1, online_ms)
            gone = a.status == "offline" and (a.status_ms or 0) >= (a.last_ms or 0)
            result[agent_id] = heard >= since and not gone
        return result

    # --- classroom values ------------------------------------------------------------------

    def room_values(self, metric: str, window_ms: int) -> RoomValues:
        """Per ordinary classroom, a classroom metric (None: no data).

        Without classrooms in the inventory, the rooms the samples name are the classrooms.
        """
        key = (metric, window_ms)
        if key in self._room_cache:
            return self._room_cache[key]
        values: RoomValues = dict.fromkeys(self.ordinary_rooms)
        geometry = self.state.limits.geometry
        first = geometry.first_bucket(self.now_ms, window_ms)
        last = geometry.bucket(self.now_ms)
        listed = self._rooms_listed
        if metric == "multimedia_uptime":
            types = self.settings.multimedia_types
            equipped = set()
            for dev in self.state.devices.values():
                room_id = dev.classroom
                if dev.type in types and room_id and (room_id in values or not listed):
                    equipped.add(room_id)
                    share = dev.counter.share_pct(first, last)
                    old = values.get(room_id)
                    values[room_id] = share if old is None or (
                        share is not None and share > old) else old
            # "多媒体教室占普通教室比例": the denominator is every ordinary classroom, so a room
            # with no projector or panel is a room without multimedia (0 %), not missing data.
            for room_id in values.keys() - equipped:
                values[room_id] = 0.0
        elif metric == "wifi_good_pct":
            for room_id, room in self.state.wifi.items():
                if room_id in values or not listed:
                    values[room_id] = room.counter.share_pct(first, last)
        elif metric == "class_link_mbps":
            since = self._since(window_ms)
            for room_id, (ts, mbps) in self.state.links.items():
                if ts >= since and (room_id in values or not listed):
                    values[room_id] = mbps
        else:
            raise ValueError(f"{metric} is not a classroom metric")
        self._room_cache[key] = values
        return values


def _min(values: RoomValues) -> float | None:
    known = [v for v in values.values() if v is not None]
    return min(known) if known else None
