"""Classroom conditions: devices down in school hours, projector errors, lamp hours, poor Wi-Fi."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from collector.alerts.model import Alert, AlertKey, ClearLog, Severity
from collector.alerts.schooltime import Directory
from collector.alerts.settings import AlertRulesSettings
from common.wire import AgentIdentity, Sample

ERROR_FIELDS: Final = ("err_fan", "err_lamp", "err_temp", "err_cover", "err_filter", "err_other")


@dataclass(slots=True)
class _Device:
    district: str
    classroom: str
    device_type: str
    agent: str
    last_ts: int = 0
    down_since_ms: int | None = None
    last_down_ms: int = 0
    down_firing: bool = False
    error_since_ms: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    lamp_since_ms: int | None = None
    lamp_hours: float = 0.0

    def bad(self) -> bool:
        """Anything to evaluate (most devices, most of the time: no)."""
        return (self.down_since_ms is not None or self.error_since_ms is not None
                or self.lamp_since_ms is not None)

    def labels(self, device_id: str) -> dict[str, str]:
        """The alert labels (built only for firing alerts, to keep the state small)."""
        return {"device": device_id, "classroom": self.classroom,
                "device_type": self.device_type, "agent": self.agent}


@dataclass(slots=True)
class _Room:
    district: str
    last_ts: int = 0
    poor_since_ms: int | None = None
    last_poor_ms: int = 0
    best_dbm: float = 0.0
    best_bssid: str = ""
    firing: bool = False


class ClassroomWatch:
    """Per device (``av`` samples) and per classroom (``wifi`` scans)."""

    def __init__(self, rules: AlertRulesSettings, directory: Directory,
                 clears: ClearLog) -> None:
        self.rules = rules
        self.directory = directory
        self.clears = clears
        self._devices: dict[tuple[str, str], _Device] = {}
        self._rooms: dict[tuple[str, str], _Room] = {}
        # Only these are looked at on each evaluation: a district is mostly healthy.
        self._bad_devices: set[tuple[str, str]] = set()
        self._poor_rooms: set[tuple[str, str]] = set()

    def on_av(self, who: AgentIdentity, sample: Sample) -> None:
        """One device check."""
        device_id = sample.tags.get("device", "?")
        key = (who.school, device_id)
        dev = self._devices.get(key)
        if dev is None:
            dev = self._devices[key] = _Device(
                who.district, sample.tags.get("classroom", ""),
                sample.tags.get("device_type", ""), who.agent)
        if sample.ts_ms < dev.last_ts:
            return  # spool backlog older than what we know
        dev.last_ts = sample.ts_ms
        online = sample.flag("online")
        if online is True:
            self.clears.clear("device_down", who.school, device_id, dev.down_firing)
            dev.down_since_ms, dev.down_firing = None, False
        elif online is False:
            school = self.directory.school(who.school, who.district)
            # Outside school hours projectors sleep and PCs are off: that is not a fault.
            if school.calendar.is_school_time(sample.ts_ms):
                if dev.down_since_ms is None:
                    dev.down_since_ms = sample.ts_ms
                dev.last_down_ms = sample.ts_ms
                if dev.last_down_ms - dev.down_since_ms >= self.rules.device_down_grace * 1000:
                    dev.down_firing = True
        self._errors(who.school, device_id, dev, sample)
        self._lamp(who.school, device_id, dev, sample)
        if dev.bad():
            self._bad_devices.add(key)
        else:
            self._bad_devices.discard(key)

    def _errors(self, school: str, device_id: str, dev: _Device, sample: Sample) -> None:
        present = False
        bad: dict[str, int] = {}
        for name in ERROR_FIELDS:
            value = sample.number(name)
            if value is None:
                continue
            present = True
            if value >= 1:
                bad[name] = int(value)
        if not present:
            return  # offline or ERST unanswered: nothing known about errors
        if not bad:
            self.clears.clear("projector_error", school, device_id,
                              dev.error_since_ms is not None)
            dev.error_since_ms, dev.errors = None, {}
            return
        if dev.error_since_ms is None:
            dev.error_since_ms = sample.ts_ms
        dev.errors = bad

    def _lamp(self, school: str, device_id: str, dev: _Device, sample: Sample) -> None:
        hours = sample.number("lamp_hours")
        if hours is None:
            return
        dev.lamp_hours = hours
        if hours > self.rules.lamp_hours_max:
            if dev.lamp_since_ms is None:
                dev.lamp_since_ms = sample.ts_ms
        else:  # a new lamp resets the counter
            self.clears.clear("lamp_hours", school, device_id,
                              dev.lamp_since_ms is not None)
            dev.lamp_since_ms = None

    def on_wifi_scan(self, who: AgentIdentity, classroom: str, ts_ms: int,
                     samples: list[Sample]) -> None:
        """One scan of one classroom: every BSSID of the school SSIDs heard at ``ts_ms``."""
        best: tuple[float, str] | None = None
        for sample in samples:
            rssi = sample.number("rssi_dbm")
            if rssi is not None and (best is None or rssi > best[0]):
                best = (rssi, sample.tags.get("bssid", ""))
        if best is None:
            return
        key = (who.school, classroom)
        room = self._rooms.setdefault(key, _Room(who.district))
        if ts_ms < room.last_ts:
            return
        room.last_ts = ts_ms
        room.best_dbm, room.best_bssid = best
        if best[0] >= self.rules.wifi_poor_dbm:
            self.clears.clear("wifi_poor", who.school, classroom, room.firing)
            room.poor_since_ms, room.firing = None, False
            self._poor_rooms.discard(key)
            return
        if not self.directory.school(who.school, who.district).calendar.is_school_time(ts_ms):
            return
        if room.poor_since_ms is None:
            room.poor_since_ms = ts_ms
            self._poor_rooms.add(key)
        room.last_poor_ms = ts_ms
        if room.last_poor_ms - room.poor_since_ms >= self.rules.wifi_poor_for * 1000:
            room.firing = True

    def evaluate(self) -> list[Alert]:
        """Device and classroom alerts firing now."""
        alerts: list[Alert] = []
        for school, device_id in self._bad_devices:
            alerts.extend(self._device_alerts(school, device_id,
                                              self._devices[(school, device_id)]))
        for school, classroom in self._poor_rooms:
            room = self._rooms[(school, classroom)]
            if room.firing and room.poor_since_ms is not None:
                alerts.append(Alert(
                    AlertKey("wifi_poor", school, classroom), "warning", room.district,
                    room.poor_since_ms, {"classroom": classroom},
                    {"best_rssi_dbm": room.best_dbm, "threshold_dbm": self.rules.wifi_poor_dbm,
                     "bssid": room.best_bssid}))
        return alerts

    def _device_alerts(self, school: str, device_id: str, dev: _Device) -> list[Alert]:
        alerts: list[Alert] = []
        if dev.down_firing and dev.down_since_ms is not None:
            minutes = (dev.last_down_ms - dev.down_since_ms) / 60000
            alerts.append(Alert(AlertKey("device_down", school, device_id), "error",
                                dev.district, dev.down_since_ms, dev.labels(device_id),
                                {"down_minutes": round(minutes, 1)}))
        if dev.error_since_ms is not None and dev.errors:
            severity: Severity = "error" if max(dev.errors.values()) >= 2 else "warning"
            figures: dict[str, float | str] = {
                name: "error" if v >= 2 else "warning" for name, v in sorted(dev.errors.items())}
            alerts.append(Alert(AlertKey("projector_error", school, device_id), severity,
                                dev.district, dev.error_since_ms, dev.labels(device_id),
                                figures))
        if dev.lamp_since_ms is not None:
            alerts.append(Alert(AlertKey("lamp_hours", school, device_id), "warning",
                                dev.district, dev.lamp_since_ms, dev.labels(device_id),
                                {"lamp_hours": dev.lamp_hours,
                                 "lamp_hours_max": float(self.rules.lamp_hours_max)}))
        return alerts
