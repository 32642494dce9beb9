"""Switches, routers and wireless controllers over SNMP v2c/v3: interfaces, uptime, APs.

Each target is polled concurrently with its own timeout and retries, so a dead device costs
only its own ``timeout x (retries + 1)`` and never delays the others.  A device that does not
answer gives ``netdev`` up=false and a log line naming it.  Interface rates come from counter
deltas (see snmp_parsers/counters.py): no rate on a first poll or after the agent restarted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from agent.probes.base import (
    Monotonic,
    ProbeSettingsBase,
    WallClockMs,
    wall_clock_ms,
)
from agent.probes.snmp_parsers import SnmpError, VarBind, as_int
from agent.probes.snmp_parsers.aptables import (
    AP_TABLES,
    ApTable,
    ApVendor,
    parse_ap_table,
    with_expected,
)
from agent.probes.snmp_parsers.counters import agent_restarted, rate_bps
from agent.probes.snmp_parsers.ifmib import IF_COLUMNS, SYS_UPTIME, IfRow, parse_if_table
from agent.probes.values import ValueGuard
from common.config import Duration, WithSecrets, require_unique
from common.wire import MAX_TAG_VALUE_LEN, TAG_PATTERN, FieldValue, Sample

log = logging.getLogger(__name__)

AuthProtocol = Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"]
PrivProtocol = Literal["des", "3des", "aes", "aes192", "aes256", "aes192c", "aes256c"]
# A tag value on the wire: short, no control characters, no backslash (common/wire.py).
TagStr = Annotated[str, Field(min_length=1, max_length=MAX_TAG_VALUE_LEN, pattern=TAG_PATTERN)]


class SnmpTargetSettings(WithSecrets):
    """One device: how to reach it, its credentials, and what to read from it."""

    _secret_names: ClassVar[tuple[str, ...]] = ("community", "auth_key", "priv_key")

    name: TagStr
    host: str = Field(min_length=1)
    port: int = Field(default=161, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    community_env: str | None = None
    community_file: str | None = None
    user: str | None = None
    auth_protocol: AuthProtocol = "sha"
    auth_key_env: str | None = None
    auth_key_file: str | None = None
    priv_protocol: PrivProtocol = "aes"
    priv_key_env: str | None = None
    priv_key_file: str | None = None
    context: str = ""  # SNMPv3 context name
    timeout: Duration | None = None  # per request; default: the probe's
    retries: int | None = Field(default=None, ge=0, le=10)
    interfaces: bool = True  # walk IF-MIB (a controller polled only for its APs may say false)
    ap_table: ApVendor | None = None
    aps: list[TagStr] = []  # APs expected on this controller (the inventory's)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _credentials(self) -> SnmpTargetSettings:
        if self.version == "2c":
            if self.secret("community") is None:
                raise ValueError("version 2c needs community_env or community_file")
            if self.user is not None:
                raise ValueError("user is for version 3; 2c uses a community")
            return self
        if not self.user:
            raise ValueError("version 3 needs user")
        if self.secret("community") is not None:
            raise ValueError("community is for version 2c; 3 uses user and keys")
        if self.secret("priv_key") is not None and self.secret("auth_key") is None:
            raise ValueError("priv_key needs auth_key too (SNMPv3 has no privacy without auth)")
        for what in ("auth_key", "priv_key"):
            key = self.secret(what)
            if key is not None and len(key) < 8:
                raise ValueError(f"{what}: an SNMPv3 key needs at least 8 characters (RFC 3414)")
        return self

    @property
    def security_level(self) -> str:
        """noAuthNoPriv, authNoPriv or authPriv (v3), or community (v2c)."""
        if self.version == "2c":
            return "community"
        if self.secret("auth_key") is None:
            return "noAuthNoPriv"
        return "authPriv" if self.secret("priv_key") is not None else "authNoPriv"


class SnmpSettings(ProbeSettingsBase):
    """``type: snmp``; ``timeout`` and ``retries`` are per SNMP request (targets may override)."""

    type: Literal["snmp"]
    interval: Duration = 60.0
    timeout: Duration | None = 3.0
    retries: int = Field(default=2, ge=0, le=10)
    max_repetitions: int = Field(default=25, ge=1, le=100)
    targets: list[SnmpTargetSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SnmpSettings:
        require_unique((t.name for t in self.targets), "target name")
        return self

    def run_timeout(self) -> float:
        """How long one whole poll may run (``timeout`` here is per SNMP request): the interval.

        Targets are polled concurrently and each poll is cut at 90 % of the interval.
        """
        return self.interval

    def request_timeout(self, target: SnmpTargetSettings) -> float:
        """Seconds to wait for one answer from ``target``."""
        return target.timeout or self.timeout or 3.0

    def request_retries(self, target: SnmpTargetSettings) -> int:
        """Resends after a timeout for ``target``."""
        return self.retries if target.retries is None else target.retries

    def build(self) -> SnmpProbe:
        """The probe on pysnmp (imported only now)."""
        from agent.probes.snmp_transport import pysnmp_sessions

        return SnmpProbe(self, pysnmp_sessions(self))


class SnmpSession(Protocol):
    """SNMP requests to the targets (pysnmp in production); raise SnmpError on failure."""

    async def get(self, target: SnmpTargetSettings, oids: Sequence[str]) -> list[VarBind]:
        """GET the given scalar OIDs."""
        ...

    async def walk(self, target: SnmpTargetSettings, column: str) -> list[VarBind]:
        """GETBULK-walk one table column (the varbinds under ``column``, in order)."""
        ...


SessionFactory = Callable[[], AbstractAsyncContextManager[SnmpSession]]


@dataclass
class _DeviceState:
    """What the previous poll of one device left for rates and restart detection."""

    at: float = 0.0  # monotonic time of the interface counters
    uptime_ticks: int | None = None
    counters: dict[str, tuple[int, int | None, int | None]] = field(default_factory=dict)
    failing: str | None = None  # the error last logged, so a dead device logs once per cause


class SnmpProbe:
    """Polls every target concurrently; ``netdev``, ``netdev_if`` and ``ap`` samples."""

    WALKS_PER_DEVICE = 4  # concurrent column walks per device: fast, without flooding its CPU

    def __init__(self, settings: SnmpSettings, sessions: SessionFactory, *,
                 monotonic: Monotonic = time.monotonic,
                 now_ms: WallClockMs = wall_clock_ms) -> None:
        self.settings = settings
        self.sessions = sessions
        self.monotonic = monotonic
        self.now_ms = now_ms
        self._state: dict[str, _DeviceState] = {}
        self.finished_at: dict[str, float] = {}  # monotonic end of each target's last poll
        self.guard = ValueGuard(settings.instance_name("snmp"))

    def collect(self) -> list[Sample]:
        """Poll all targets now (runs its own event loop; called from a scheduler thread)."""
        return asyncio.run(self.poll())

    async def poll(self) -> list[Sample]:
        """Poll all targets concurrently in one session."""
        async with self.sessions() as session:
            results = await asyncio.gather(
                *(self._poll_target(session, t) for t in self.settings.targets))
        # Per value: one device's absurd counter costs that value, not every device's batch.
        return self.guard.clean(s for samples in results for s in samples)

    async def _poll_target(self, session: SnmpSession, target: SnmpTargetSettings) -> list[Sample]:
        state = self._state.setdefault(target.name, _DeviceState())
        # Bound the whole poll too, so a device answering very slowly cannot make this probe
        # overrun its interval.
        budget = self.settings.interval * 0.9
        try:
            samples = await asyncio.wait_for(self._poll_device(session, target, state), budget)
        except (SnmpError, TimeoutError) as exc:
            why = str(exc) or f"poll took longer than {budget:g}s"
            if state.failing != why:
                log.warning("snmp device %s (%s:%d) not polled: %s", target.name, target.host,
                            target.port, why)
            state.failing = why
            samples = [self._netdev(target, {"up": False})]
        else:
            if state.failing is not None:
                log.info("snmp device %s (%s:%d) answers again", target.name, target.host,
                         target.port)
            state.failing = None
        self.finished_at[target.name] = self.monotonic()
        return samples

    async def _poll_device(self, session: SnmpSession, target: SnmpTargetSettings,
                           state: _DeviceState) -> list[Sample]:
        answer = await session.get(target, [SYS_UPTIME])
        ticks = as_int(dict(answer).get(SYS_UPTIME))
        fields: dict[str, FieldValue] = {"up": True}
        if ticks is not None:
            fields["uptime_s"] = ticks // 100
        samples = [self._netdev(target, fields)]
        gate = asyncio.Semaphore(self.WALKS_PER_DEVICE)

        async def walk(column: str) -> list[VarBind]:
            async with gate:
                return await session.walk(target, column)

        async def walk_all(columns: dict[str, str]) -> dict[str, list[VarBind] | SnmpError]:
            got = await asyncio.gather(*(walk(oid) for oid in columns.values()),
                                       return_exceptions=True)
            out: dict[str, list[VarBind] | SnmpError] = {}
            for name, item in zip(columns, got, strict=True):
                if isinstance(item, BaseException) and not isinstance(item, SnmpError):
                    raise item
                out[name] = item
            return out

        if target.interfaces:
            walked = await walk_all(IF_COLUMNS)
            now = self.monotonic()
            # A column that failed is treated as absent: its fields (or rates) are missing
            # this time, the rest of the device still reports.
            self._log_failed(target, walked)
            rows = parse_if_table({k: v for k, v in walked.items() if isinstance(v, list)})
            samples += self._if_samples(target, state, rows, now, ticks)
        if target.ap_table is not None:
            table = AP_TABLES[target.ap_table]
            samples += self._ap_samples(target, table, await walk_all(table.columns()))
        return samples

    def _log_failed(self, target: SnmpTargetSettings,
                    walked: dict[str, list[VarBind] | SnmpError]) -> list[str]:
        failed = [name for name, got in walked.items() if isinstance(got, SnmpError)]
        if failed:
            log.warning("snmp device %s (%s:%d): walk of %s failed: %s", target.name,
                        target.host, target.port, ", ".join(failed), walked[failed[0]])
        return failed

    def _ap_samples(self, target: SnmpTargetSettings, table: ApTable,
                    walked: dict[str, list[VarBind] | SnmpError]) -> list[Sample]:
        if self._log_failed(target, walked):
            return []  # a half-read table would report healthy APs as missing
        found = parse_ap_table(table, {k: v for k, v in walked.items() if isinstance(v, list)})
        if not found:
            log.warning("snmp device %s: %s is empty (is ap_table right?)", target.name,
                        table.mib)
        ts = self.now_ms()
        samples = []
        for ap in with_expected(found, target.aps, table.clients_oid is not None):
            fields: dict[str, FieldValue] = {"online": ap.online}
            if ap.clients is not None:
                fields["clients"] = ap.clients
            samples.append(Sample("ap", ts, {"ap": ap.name, "controller": target.name}, fields))
        return samples

    def _if_samples(self, target: SnmpTargetSettings, state: _DeviceState, rows: list[IfRow],
                    now: float, ticks: int | None) -> list[Sample]:
        elapsed = now - state.at
        fresh = not state.counters or agent_restarted(state.uptime_ticks, ticks, elapsed)
        previous = {} if fresh else state.counters
        ts = self.now_ms()
        samples = []
        for row in rows:
            fields: dict[str, FieldValue] = {}
            if row.up is not None:
                fields["up"] = row.up
            if row.speed_mbps is not None:
                fields["speed_mbps"] = row.speed_mbps
            if row.in_errors is not None:
                fields["in_errors"] = row.in_errors
            if row.out_errors is not None:
                fields["out_errors"] = row.out_errors
            old = previous.get(row.index)
            if old is not None and old[0] == row.counter_bits:  # same counters as last time
                link_bps = row.speed_mbps * 1e6 if row.speed_mbps else None
                for key, before, after in (("in_bps", old[1], row.in_octets),
                                           ("out_bps", old[2], row.out_octets)):
                    bps = rate_bps(before, after, elapsed, row.counter_bits, link_bps)
                    if bps is not None:
                        fields[key] = round(bps, 1)
            if fields:
                samples.append(Sample("netdev_if", ts, {"device": target.name,
                                                        "ifname": row.name, "source": "snmp"},
                                      fields))
        state.at, state.uptime_ticks = now, ticks
        state.counters = {r.index: (r.counter_bits, r.in_octets, r.out_octets) for r in rows}
        return samples

    def _netdev(self, target: SnmpTargetSettings, fields: dict[str, FieldValue]) -> Sample:
        return Sample("netdev", self.now_ms(), {"device": target.name, "source": "snmp"}, fields)
