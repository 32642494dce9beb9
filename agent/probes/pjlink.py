"""Classroom projectors over PJLink (TCP 4352): online, power, lamp hours, error status.

Every device is queried concurrently, each within ``device_timeout``, so one dead projector
never delays another.  A wrong password (``PJLINK ERRA``) is logged once and the device is left
alone for ``auth_backoff_polls`` polls: retrying a bad password every minute fills the
projector's log and can lock its network control on some models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.probes.base import ProbeSettingsBase, WallClockMs, wall_clock_ms
from agent.probes.pjlink_protocol import (
    PJLINK_PORT,
    PjlinkAuthError,
    PjlinkError,
    ProjectorStatus,
    query_projector,
)
from common.config import Duration, WithSecrets, require_unique
from common.wire import TAG_PATTERN, FieldValue, Sample

log = logging.getLogger(__name__)

# A tag value: non-empty, printable, no backslash (InfluxDB tags), as common/wire.py checks.

Query = Callable[[str, int, str | None, float], ProjectorStatus]


class PjlinkDevice(WithSecrets):
    """One projector; the password comes from ``password_env`` or ``password_file``."""

    _secret_names: ClassVar[tuple[str, ...]] = ("password",)

    name: str = Field(pattern=TAG_PATTERN)
    classroom: str = Field(pattern=TAG_PATTERN)
    host: str = Field(min_length=1)
    port: int = Field(default=PJLINK_PORT, ge=1, le=65535)
    password_env: str | None = None
    password_file: str | None = None


class PjlinkSettings(ProbeSettingsBase):
    """``type: pjlink``."""

    type: Literal["pjlink"]
    interval: Duration = 60.0
    devices: list[PjlinkDevice] = Field(min_length=1)
    device_timeout: Duration = 5.0  # the whole session with one projector
    auth_backoff_polls: int = Field(default=10, ge=1, le=10_000)
    max_parallel: int = Field(default=16, ge=1, le=256)

    @model_validator(mode="after")
    def _unique_names(self) -> PjlinkSettings:
        require_unique((d.name for d in self.devices), "device name")
        return self

    def build(self) -> PjlinkProbe:
        """The probe speaking PJLink over real sockets."""
        return PjlinkProbe(self)


@dataclass
class _Outcome:
    device: PjlinkDevice
    status: ProjectorStatus | None = None
    error: PjlinkError | None = None


class PjlinkProbe:
    """One ``av`` sample per projector per poll (none for a device in auth back-off)."""

    def __init__(self, settings: PjlinkSettings, *, query: Query = query_projector,
                 now_ms: WallClockMs = wall_clock_ms) -> None:
        self.settings = settings
        self.query = query
        self.now_ms = now_ms
        self._skip: dict[str, int] = {}  # device -> polls still to skip after ERRA
        self._auth_logged: set[str] = set()
        self._down: dict[str, str] = {}  # device -> error last logged (log on change only)

    def collect(self) -> list[Sample]:
        """Query every device not in back-off, concurrently."""
        due = []
        for device in self.settings.devices:
            left = self._skip.get(device.name, 0)
            if left > 0:
                self._skip[device.name] = left - 1
                continue
            due.append(device)
        if not due:
            return []
        ts_ms = self.now_ms()
        workers = min(len(due), self.settings.max_parallel)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pjlink") as pool:
            outcomes = list(pool.map(self._poll, due))
        return [self._sample(o, ts_ms) for o in outcomes]

    def _poll(self, device: PjlinkDevice) -> _Outcome:
        try:
            status = self.query(device.host, device.port, device.secret("password"),
                                self.settings.device_timeout)
        except PjlinkError as exc:
            return _Outcome(device, error=exc)
        return _Outcome(device, status=status)

    def _sample(self, outcome: _Outcome, ts_ms: int) -> Sample:
        device = outcome.device
        tags = {"device": device.name, "classroom": device.classroom,
                "device_type": "projector"}
        error = outcome.error
        if isinstance(error, PjlinkAuthError):
            self._skip[device.name] = self.settings.auth_backoff_polls
            if device.name not in self._auth_logged:
                self._auth_logged.add(device.name)
                log.error("projector %s: %s; not retried for %d polls", device.name, error,
                          self.settings.auth_backoff_polls)
            # It greeted us: the projector is up, only its status is out of reach.
            return Sample("av", ts_ms, tags, {"online": True})
        if error is not None or outcome.status is None:
            if self._down.get(device.name) != type(error).__name__:
                log.warning("projector %s offline: %s", device.name, error)
            self._down[device.name] = type(error).__name__
            return Sample("av", ts_ms, tags, {"online": False})
        if self._down.pop(device.name, None) is not None:
            log.info("projector %s answers again", device.name)
        self._auth_logged.discard(device.name)
        return Sample("av", ts_ms, tags, status_fields(outcome.status))


def status_fields(status: ProjectorStatus) -> dict[str, FieldValue]:
    """The ``av`` fields of a projector that answered."""
    fields: dict[str, FieldValue] = {"online": True, "power": status.power}
    if status.lamp_hours:
        fields["lamp_hours"] = max(status.lamp_hours)
    for part, level in status.errors.items():
        fields[f"err_{part}"] = level
    if status.filter_hours is not None:
        fields["filter_hours"] = status.filter_hours
    return fields
