"""Classroom multimedia devices (多媒体教室): projectors, panels, PCs, speakers - are they up?

Each device is checked by its ``method``: ``pjlink`` (power, lamp hours, errors), ``icmp``,
``tcp`` (a port such as RDP 3389) or ``snmp`` (a GET of sysUpTime.0).  Devices are checked
concurrently, each within ``device_timeout``; a device that cannot be checked is
``online: false``, never an exception, and its state changes are logged once by name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.probes.av_checks import DEFAULT_CHECKERS, Checker, CheckError, Fields
from agent.probes.base import ProbeSettingsBase, WallClockMs, wall_clock_ms
from agent.probes.icmp import IcmpPermissionError
from common.config import Duration, WithSecrets, require_unique
from common.vocab import DeviceType
from common.wire import TAG_PATTERN, Sample

log = logging.getLogger(__name__)

# A tag value: non-empty, printable, no backslash (InfluxDB tags), as common/wire.py checks.
DEFAULT_PORTS = {"pjlink": 4352, "snmp": 161}
# A checker past device_timeout by this much is given up on (its thread finishes on its own).
GRACE_S = 2.0

Method = Literal["pjlink", "icmp", "tcp", "snmp"]


class AvDevice(WithSecrets):
    """One classroom device; secrets from ``password_env``/``_file`` (PJLink) or
    ``community_env``/``_file`` (SNMP)."""

    _secret_names: ClassVar[tuple[str, ...]] = ("password", "community")

    name: str = Field(pattern=TAG_PATTERN)
    classroom: str = Field(pattern=TAG_PATTERN)
    device_type: DeviceType
    host: str = Field(min_length=1, max_length=253)
    method: Method
    port: int | None = Field(default=None, ge=1, le=65535)
    mac: str | None = None  # informational (from `schoolmon agent discover`)
    password_env: str | None = None
    password_file: str | None = None
    community_env: str | None = None
    community_file: str | None = None
    snmp_version: Literal["1", "2c"] = "2c"

    @model_validator(mode="after")
    def _method_keys(self) -> AvDevice:
        if self.method == "tcp" and self.port is None:
            raise ValueError("port: method tcp needs a port")
        if self.method == "icmp" and self.port is not None:
            raise ValueError("port: method icmp takes no port")
        if self.method != "pjlink" and (self.password_env or self.password_file):
            raise ValueError("password_env: only method pjlink uses a password")
        if self.method != "snmp" and (self.community_env or self.community_file):
            raise ValueError("community_env: only method snmp uses a community")
        if self.method == "snmp" and not (self.community_env or self.community_file):
            raise ValueError("community_env: method snmp needs community_env or community_file")
        return self

    @property
    def effective_port(self) -> int:
        """The configured port, or the method's default (PJLink 4352, SNMP 161)."""
        return self.port or DEFAULT_PORTS.get(self.method, 0)


class AvSettings(ProbeSettingsBase):
    """``type: av``."""

    type: Literal["av"]
    interval: Duration = 60.0
    devices: list[AvDevice] = Field(min_length=1)
    device_timeout: Duration = 3.0  # one device's whole check
    max_parallel: int = Field(default=32, ge=1, le=256)

    @model_validator(mode="after")
    def _unique_names(self) -> AvSettings:
        require_unique((d.name for d in self.devices), "device name")
        return self

    def run_timeout(self, grace: float = GRACE_S) -> float:
        """The longest one collect can take."""
        batches = -(-len(self.devices) // self.max_parallel)
        return batches * self.device_timeout + grace

    def build(self) -> AvProbe:
        """The probe with the real checkers."""
        return AvProbe(self)


class AvProbe:
    """One ``av`` sample per device per poll."""

    def __init__(self, settings: AvSettings, *, checkers: Mapping[str, Checker] | None = None,
                 now_ms: WallClockMs = wall_clock_ms, grace: float = GRACE_S) -> None:
        self.settings = settings
        self.checkers = {**DEFAULT_CHECKERS, **(checkers or {})}
        self.now_ms = now_ms
        self.grace = grace
        self._problem: dict[str, str] = {}  # device -> problem last logged (log on change)

    def collect(self) -> list[Sample]:
        """Check every device concurrently."""
        s = self.settings
        ts_ms = self.now_ms()
        pool = ThreadPoolExecutor(max_workers=min(len(s.devices), s.max_parallel),
                                  thread_name_prefix="av")
        try:
            futures = [pool.submit(self.checkers[d.method], d, s.device_timeout)
                       for d in s.devices]
            wait(futures, timeout=s.run_timeout(self.grace))
        finally:
            # A hung checker is abandoned, not waited for: it must not hold up the others.
            pool.shutdown(wait=False, cancel_futures=True)
        samples = []
        for device, future in zip(s.devices, futures, strict=True):
            fields = self._fields(device, future)
            if fields is not None:
                tags = {"device": device.name, "classroom": device.classroom,
                        "device_type": device.device_type}
                samples.append(Sample("av", ts_ms, tags, fields))
        return samples

    def _fields(self, device: AvDevice, future: Future[Fields]) -> Fields | None:
        if not future.done():
            return self._offline(device, f"no result within {self.settings.device_timeout}s")
        try:
            fields = future.result()
        except IcmpPermissionError as exc:
            # The agent's fault, not the device's: no false "offline".
            log.error("av %s: %s", device.name, exc)
            return None
        except CheckError as exc:
            if exc.online:
                self._note(device, f"online, but {exc}", logging.ERROR)
                return {"online": True}
            return self._offline(device, str(exc))
        except Exception as exc:  # a library's surprise about one device must not stop the rest
            return self._offline(device, f"{type(exc).__name__}: {exc}")
        if not fields.get("online"):
            return self._offline(device, "no answer")
        if self._problem.pop(device.name, None) is not None:
            log.info("av %s (%s) answers again", device.name, device.host)
        return fields

    def _offline(self, device: AvDevice, why: str) -> Fields:
        self._note(device, f"offline: {why}", logging.WARNING)
        return {"online": False}

    def _note(self, device: AvDevice, problem: str, level: int) -> None:
        if self._problem.get(device.name) != problem:
            log.log(level, "av %s (%s, %s): %s", device.name, device.host, device.method,
                    problem)
        self._problem[device.name] = problem
