"""Reachability of the school's gateway, DNS, district hub, the internet: ICMP echo or TCP connect.

``icmp_echo`` and ``tcp_connect`` are public: the av probe checks classroom devices with them.
Echoes are paced like ping: one every ``interval`` seconds, each answered within ``timeout``
or lost, so a dead host costs ``(count - 1) * interval + timeout`` and never more.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import Field, model_validator

from agent.probes.base import ProbeError, ProbeSettingsBase, WallClockMs, wall_clock_ms
from agent.probes.echo_sessions import IcmpSession, TcpSession
from agent.probes.icmp import DEFAULT_SOCKETS, IcmpPermissionError, IcmpSockets
from common.config import Duration, Strict, require_unique
from common.vocab import TargetRole
from common.wire import FieldValue, Sample

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class EchoStats:
    """What ``count`` echoes (or connects) gave: RTTs of the answered ones, in send order."""

    sent: int
    received: int
    rtts_ms: list[float]

    @property
    def up(self) -> bool:
        """At least one answer."""
        return self.received > 0

    @property
    def loss_pct(self) -> float:
        """Share of echoes without an answer within the timeout."""
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 100.0

    @property
    def rtt_avg_ms(self) -> float | None:
        """Mean RTT (None without answers)."""
        return statistics.fmean(self.rtts_ms) if self.rtts_ms else None

    @property
    def rtt_min_ms(self) -> float | None:
        """Lowest RTT (None without answers)."""
        return min(self.rtts_ms) if self.rtts_ms else None

    @property
    def rtt_max_ms(self) -> float | None:
        """Highest RTT (None without answers)."""
        return max(self.rtts_ms) if self.rtts_ms else None

    @property
    def jitter_ms(self) -> float | None:
        """Mean absolute difference of consecutive RTTs (None with fewer than two)."""
        r = self.rtts_ms
        if len(r) < 2:
            return None
        return statistics.fmean(abs(b - a) for a, b in itertools.pairwise(r))


class _Session(Protocol):
    def send(self, seq: int) -> bool:
        """Start echo ``seq``; False when it failed at once (no route, refused)."""

    def wait(self, timeout: float) -> tuple[list[int], list[int]]:
        """Block up to ``timeout``; (answered seqs, failed seqs)."""

    def forget(self, seq: int) -> None:
        """Echo ``seq`` expired: release what it holds."""


def _run(session: _Session, count: int, timeout: float, interval: float,
         clock: Callable[[], float] = time.perf_counter) -> EchoStats:
    start = clock()
    sent_at: dict[int, float] = {}
    rtts: dict[int, float] = {}
    next_seq = 0
    while True:
        now = clock()
        if next_seq < count and now >= start + next_seq * interval:
            seq, next_seq = next_seq, next_seq + 1
            if session.send(seq):
                sent_at[seq] = clock()
            continue
        for seq, at in list(sent_at.items()):
            if now - at >= timeout:
                del sent_at[seq]
                session.forget(seq)
        if next_seq >= count and not sent_at:
            break
        deadlines = [at + timeout for at in sent_at.values()]
        if next_seq < count:
            deadlines.append(start + next_seq * interval)
        answered, failed = session.wait(max(0.0, min(deadlines) - now))
        got = clock()
        for seq in answered:
            at = sent_at.pop(seq, -1.0)
            if at >= 0 and got - at <= timeout:
                rtts[seq] = (got - at) * 1000.0
        for seq in failed:
            if sent_at.pop(seq, None) is not None:
                session.forget(seq)
    return EchoStats(count, len(rtts), [rtts[s] for s in sorted(rtts)])


def icmp_echo(host: str, count: int, timeout: float, interval: float = 0.2,
              *, sockets: IcmpSockets = DEFAULT_SOCKETS) -> EchoStats:
    """Ping ``host`` (IPv4 or IPv6) ``count`` times; raises ProbeError when the name does not
    resolve, IcmpPermissionError when this process may not send ICMP."""
    session = IcmpSession(host, sockets)
    try:
        return _run(session, count, timeout, interval)
    finally:
        session.close()


def tcp_connect(host: str, port: int, count: int, timeout: float,
                interval: float = 0.2) -> EchoStats:
    """Open (and close) ``count`` TCP connections to ``host:port``; a refused or timed-out
    connect is a lost echo. Raises ProbeError when the name does not resolve."""
    session = TcpSession(host, port)
    try:
        return _run(session, count, timeout, interval)
    finally:
        session.close()


class ReachTarget(Strict):
    """One host to reach."""

    name: str = Field(min_length=1, max_length=128)
    host: str = Field(min_length=1, max_length=253)
    role: TargetRole
    method: Literal["icmp", "tcp"] = "icmp"
    port: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _port(self) -> ReachTarget:
        if self.method == "tcp" and self.port is None:
            raise ValueError("port: method tcp needs a port")
        if self.method == "icmp" and self.port is not None:
            raise ValueError("port: method icmp takes no port")
        return self


class ReachSettings(ProbeSettingsBase):
    """``type: reach``; ``timeout`` here is the wait for each echo's answer."""

    type: Literal["reach"]
    interval: Duration = 30.0
    timeout: Duration | None = 2.0
    count: int = Field(default=5, ge=1, le=100)
    echo_interval: Duration = 0.2  # between the echoes of one target
    targets: list[ReachTarget] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ReachSettings:
        require_unique((t.name for t in self.targets), "target name")
        return self

    @property
    def echo_timeout(self) -> float:
        """Seconds to wait for each answer."""
        return self.timeout or 2.0

    def run_timeout(self) -> float:
        """The longest one collect can take (targets run in parallel), plus a margin."""
        return (self.count - 1) * self.echo_interval + self.echo_timeout + 1.0

    def build(self) -> ReachProbe:
        """The probe on real sockets."""
        return ReachProbe(self)


IcmpFn = Callable[[str, int, float, float], EchoStats]
TcpFn = Callable[[str, int, int, float, float], EchoStats]


def stats_fields(stats: EchoStats) -> dict[str, FieldValue]:
    """The ``reach`` fields of one target's echoes (RTT fields only when something answered)."""
    fields: dict[str, FieldValue] = {"up": stats.up, "loss_pct": round(stats.loss_pct, 3)}
    for name, value in (("rtt_ms", stats.rtt_avg_ms), ("rtt_min_ms", stats.rtt_min_ms),
                        ("rtt_max_ms", stats.rtt_max_ms), ("jitter_ms", stats.jitter_ms)):
        if value is not None:
            fields[name] = round(value, 3)
    return fields


class ReachProbe:
    """One ``reach`` sample per target; targets are probed in parallel."""

    def __init__(self, settings: ReachSettings, *, icmp: IcmpFn = icmp_echo,
                 tcp: TcpFn = tcp_connect, now_ms: WallClockMs = wall_clock_ms) -> None:
        self.settings = settings
        self.icmp = icmp
        self.tcp = tcp
        self.now_ms = now_ms

    def _probe(self, target: ReachTarget) -> EchoStats:
        s = self.settings
        if target.method == "tcp":
            assert target.port is not None  # the settings validator guarantees it
            return self.tcp(target.host, target.port, s.count, s.echo_timeout, s.echo_interval)
        return self.icmp(target.host, s.count, s.echo_timeout, s.echo_interval)

    def collect(self) -> list[Sample]:
        """Probe every target; a target that cannot be probed at all is logged by name."""
        ts_ms = self.now_ms()
        targets = self.settings.targets
        with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="reach") as pool:
            futures = [pool.submit(self._probe, t) for t in targets]
        samples, denied = [], []
        for target, future in zip(targets, futures, strict=True):
            tags = {"target": target.name, "target_role": target.role, "method": target.method}
            try:
                stats = future.result()
            except IcmpPermissionError as exc:
                # Not the target's fault: a down sample would be a false alarm.
                log.error("reach %s (%s): %s", target.name, target.host, exc)
                denied.append(target.name)
                continue
            except (ProbeError, OSError) as exc:
                log.warning("reach %s (%s): %s", target.name, target.host, exc)
                stats = EchoStats(self.settings.count, 0, [])
            samples.append(Sample("reach", ts_ms, tags, stats_fields(stats)))
        if denied and not samples:
            raise IcmpPermissionError(f"no target could be probed ({', '.join(denied)}): "
                                      "ICMP echo not permitted, see the log")
        return samples
