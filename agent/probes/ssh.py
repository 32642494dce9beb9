"""Switches and routers without SNMP, read over their SSH CLI (netmiko): interface state,
speed, rates and errors, and the device's uptime.

Devices are polled concurrently (a thread pool), each within the probe's timeout, so a dead or
slow device delays no other.  A device that cannot be reached or logged into gives ``netdev``
``up=false`` and one log line naming it; output that does not parse gives a ProbeError naming
the device and the command (logged; what did parse is still reported).  Where the device
reports its own rate it is used; otherwise (Linux) rates come from counter deltas between polls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.probes.base import (
    TAG_FORBIDDEN_RE,
    Monotonic,
    ProbeError,
    ProbeSettingsBase,
    WallClockMs,
    wall_clock_ms,
)
from agent.probes.ssh_parsers import VENDORS, IfStatus, ParseError
from agent.probes.ssh_parsers.model import merge
from agent.probes.ssh_session import SshError, SshSession, Timeouts, redact
from agent.probes.values import ValueGuard
from common.config import Duration, Identifier, WithSecrets, require_unique
from common.wire import FieldValue, Sample

log = logging.getLogger(__name__)


# All answers of one device in one poll: a device cannot make the agent hold more than this.
MAX_POLL_CHARS = 16 * 2**20

DeviceType = Literal["huawei", "hp_comware", "ruijie_os", "cisco_ios", "linux"]


class SshTarget(WithSecrets):
    """One device: where, what kind, and how to log in (password and/or key)."""

    _secret_names: ClassVar[tuple[str, ...]] = ("password", "passphrase", "enable_secret")

    name: Identifier
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    device_type: DeviceType
    username: str = Field(min_length=1)
    password_env: str | None = None
    password_file: str | None = None
    key_file: str | None = None  # private key for key authentication
    passphrase_env: str | None = None  # of an encrypted key_file
    passphrase_file: str | None = None
    enable_secret_env: str | None = None  # Ruijie/Cisco enable password, when one is needed
    enable_secret_file: str | None = None
    known_hosts_file: str | None = None  # check the host key against it (else accept any key)
    interfaces: list[str] = []  # report only these (names as in the ifname tag); empty: all

    @model_validator(mode="after")
    def _login(self) -> SshTarget:
        if not (self.password_env or self.password_file or self.key_file):
            raise ValueError("give password_env, password_file or key_file")
        return self


class SshSettings(ProbeSettingsBase):
    """``type: ssh``."""

    type: Literal["ssh"]
    interval: Duration = 300.0
    timeout: Duration | None = 60.0  # for the whole poll: a device not done by then is down
    connect_timeout: Duration = 10.0  # TCP connect, SSH banner, login: each
    command_timeout: Duration = 30.0  # one command's complete output
    max_parallel: int = Field(default=8, ge=1, le=64)
    targets: list[SshTarget] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SshSettings:
        require_unique((t.name for t in self.targets), "target name")
        return self

    def build(self) -> SshProbe:
        """The probe on netmiko (imported at the first poll)."""
        from agent.probes.ssh_session import connect_netmiko

        return SshProbe(self, connect_netmiko)


Connector = Callable[[SshTarget, Timeouts], SshSession]


@dataclass
class DevicePoll:
    """What one poll of one device found."""

    answered: bool = False  # logged in and at least one command answered
    interfaces: list[IfStatus] = field(default_factory=list)
    uptime_s: int | None = None
    counters_at: float | None = None  # monotonic time the counters were read
    errors: list[ProbeError] = field(default_factory=list)


def label(target: SshTarget) -> str:
    """How errors name a device."""
    return f"{target.name} ({target.host}:{target.port})"


class SshProbe:
    """Polls every target; ``netdev`` and ``netdev_if`` samples with tag source=ssh."""

    def __init__(self, settings: SshSettings, connector: Connector, *,
                 monotonic: Monotonic = time.monotonic,
                 now_ms: WallClockMs = wall_clock_ms) -> None:
        self.settings = settings
        self.connector = connector
        self.monotonic = monotonic
        self.now_ms = now_ms
        self.timeouts = Timeouts(settings.connect_timeout, settings.command_timeout)
        # A little under the probe's timeout, so the scheduler never sees this probe overrun.
        self.budget = 0.95 * (settings.timeout or settings.interval)
        self.last_errors: dict[str, list[str]] = {}  # per device, from the latest collect
        self._busy: set[str] = set()  # devices whose poll thread is still running
        self._open: dict[str, SshSession] = {}  # sessions of polls under way, by device
        self._late: set[str] = set()  # devices whose poll outlived the deadline
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int, int]] = {}  # octet counters
        self.guard = ValueGuard(settings.instance_name("ssh"))

    def collect(self) -> list[Sample]:
        """Poll all targets concurrently, for at most the probe's timeout."""
        ts_ms = self.now_ms()
        targets = self.settings.targets
        futures: dict[str, Future[DevicePoll]] = {}
        pool = ThreadPoolExecutor(max_workers=min(self.settings.max_parallel, len(targets)),
                                  thread_name_prefix="ssh-poll")
        try:
            for t in targets:
                with self._lock:
                    if t.name in self._busy:
                        continue
                    self._busy.add(t.name)
                futures[t.name] = pool.submit(self._guarded_poll, t)
            wait(futures.values(), timeout=self.budget)
        finally:
            # A device still answering at the deadline loses its session now: closing it ends
            # the poll thread's read (slow bytes or endless output), so the socket is released
            # and the next poll of that device is not skipped.  Threads still connecting finish
            # on their own (netmiko's connect timeouts bound them).
            with self._lock:
                overdue = {name for name, f in futures.items() if not f.done()}
                self._late |= overdue  # a poll still connecting closes as soon as it can
                late = [self._open.pop(name) for name in overdue if name in self._open]
            for session in late:
                session.close()
            pool.shutdown(wait=False, cancel_futures=True)
        samples: list[Sample] = []
        self.last_errors = {}
        for t in targets:
            poll = self._outcome(t, futures.get(t.name))
            for err in poll.errors:
                log.warning("ssh probe: %s", err)
            self.last_errors[t.name] = [str(e) for e in poll.errors]
            samples.extend(self._samples(t, poll, ts_ms))
        return self.guard.clean(samples)

    def _outcome(self, t: SshTarget, future: Future[DevicePoll] | None) -> DevicePoll:
        if future is None:
            return DevicePoll(errors=[ProbeError(f"{label(t)}: previous poll still running")])
        if future.cancelled():  # never started: the pool was busy until the deadline
            with self._lock:
                self._busy.discard(t.name)
        if not future.done() or future.cancelled():
            return DevicePoll(errors=[ProbeError(
                f"{label(t)}: no complete answer within the probe timeout ({self.budget:.0f}s)")])
        return future.result()

    def _guarded_poll(self, t: SshTarget) -> DevicePoll:
        try:
            return self.poll(t)
        except Exception as exc:  # a bug must cost one device's poll, not the agent
            text = redact(str(exc), [t.secret("password"), t.secret("passphrase"),
                                     t.secret("enable_secret")])
            return DevicePoll(errors=[ProbeError(
                f"{label(t)}: unexpected {type(exc).__name__}: {text[:160]}")])
        finally:
            with self._lock:
                self._busy.discard(t.name)
                self._late.discard(t.name)

    def poll(self, t: SshTarget) -> DevicePoll:
        """Log in, run the vendor's commands, parse; errors are collected, not raised."""
        vendor = VENDORS[t.device_type]
        result = DevicePoll()
        try:
            session = self.connector(t, self.timeouts)
        except ProbeError as exc:
            result.errors.append(ProbeError(f"{label(t)}: {exc}"))
            return result
        with self._lock:
            if t.name in self._late:  # connected after the deadline: nobody waits for it
                session.close()
                return result
            self._open[t.name] = session
        reports: list[list[IfStatus]] = []
        received = 0

        def run(command: str) -> str:
            nonlocal received
            output = session.run(command)
            received += len(output)
            if received > MAX_POLL_CHARS:
                raise SshError(f"answers total {received} characters, over the cap of "
                               f"{MAX_POLL_CHARS} per poll")
            return output

        try:
            for command, parse in vendor.interface_commands:
                output = run(command)
                at, result.answered = self.monotonic(), True
                try:
                    report = parse(output)
                except ParseError as exc:
                    result.errors.append(ProbeError(f"{label(t)}: {exc}"))
                    continue
                reports.append(report)
                if any(item.in_octets is not None for item in report):
                    result.counters_at = at
            if vendor.uptime_command is not None:
                command, parse_uptime = vendor.uptime_command
                output = run(command)
                result.answered = True
                try:
                    result.uptime_s = parse_uptime(output)
                except ParseError as exc:
                    result.errors.append(ProbeError(f"{label(t)}: {exc}"))
        except SshError as exc:  # the session broke or a command timed out: stop here
            result.errors.append(ProbeError(f"{label(t)}: {exc}"))
        finally:
            with self._lock:
                self._open.pop(t.name, None)
            session.close()
        result.interfaces = merge(*reports, key=vendor.canonical)
        return result

    def _samples(self, t: SshTarget, poll: DevicePoll, ts_ms: int) -> list[Sample]:
        fields: dict[str, FieldValue] = {"up": poll.answered}
        if poll.uptime_s is not None:
            fields["uptime_s"] = poll.uptime_s
        samples = [Sample("netdev", ts_ms, {"device": t.name, "source": "ssh"}, fields)]
        wanted = set(t.interfaces)
        seen = set()
        for item in poll.interfaces:
            if wanted and item.name not in wanted:
                continue
            seen.add(item.name)
            in_bps, out_bps = self._rates(t.name, item, poll.counters_at)
            values: dict[str, FieldValue | None] = {
                "up": item.up, "speed_mbps": item.speed_mbps, "in_bps": in_bps,
                "out_bps": out_bps, "in_errors": item.in_errors, "out_errors": item.out_errors}
            present = {k: v for k, v in values.items() if v is not None}
            if present:
                samples.append(Sample("netdev_if", ts_ms, {
                    "device": t.name, "ifname": TAG_FORBIDDEN_RE.sub("_", item.name)[:128],
                    "source": "ssh"}, present))
        if poll.answered:  # an interface that is gone starts again without a rate
            for key in [k for k in self._last if k[0] == t.name and k[1] not in seen]:
                del self._last[key]
        return samples

    def _rates(self, device: str, item: IfStatus,
               at: float | None) -> tuple[float | None, float | None]:
        """The device's own rates, else bits/s from the octet counters since the last poll."""
        if item.in_bps is not None or item.out_bps is not None:
            return item.in_bps, item.out_bps
        if at is None or item.in_octets is None or item.out_octets is None:
            return None, None
        key = (device, item.name)
        prev = self._last.get(key)
        self._last[key] = (at, item.in_octets, item.out_octets)
        if prev is None:
            return None, None
        elapsed = at - prev[0]
        # A counter that went back was reset (reboot, 32-bit wrap): no rate rather than a wrong one.
        if elapsed <= 0 or item.in_octets < prev[1] or item.out_octets < prev[2]:
            return None, None
        return (item.in_octets - prev[1]) * 8 / elapsed, (item.out_octets - prev[2]) * 8 / elapsed
