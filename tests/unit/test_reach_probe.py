"""reach: ICMP packet building/parsing, echo statistics, pacing, the probe with injected echoes."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
from pydantic import ValidationError

from agent.probes.base import ProbeError
from agent.probes.icmp import (
    IcmpPermissionError,
    build_echo_request,
    checksum,
    parse_echo_reply,
    permission_message,
)
from agent.probes.reach import EchoStats, ReachProbe, ReachSettings, _run, stats_fields
from common.wire import Sample, check_samples

TS = 1_763_890_000_000

# Reference packets serialised by scapy 2.6 (ICMP(type=8, id=0x1234, seq=7)/b"schoolmon", and
# the same as an echo reply inside an IPv4 header from 127.0.0.1 to 127.0.0.1).
SCAPY_REQUEST = bytes.fromhex("0800bf15123400077363686f6f6c6d6f6e")
SCAPY_REPLY_WITH_IP = bytes.fromhex(
    "450000250001000040017cd57f0000017f0000010000c715123400077363686f6f6c6d6f6e")


def test_checksum_rfc1071_example() -> None:
    """RFC 1071 section 3 example: the sum of 0001 f203 f4f5 f6f7 is ddf2, checksum 220d."""
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff", b"abc", bytes(range(256)) * 3])
def test_checksum_of_data_with_its_checksum_is_zero(data: bytes) -> None:
    """Odd lengths are padded; appending the checksum makes the total verify as zero."""
    padded = data + b"\0" * (len(data) % 2)
    assert checksum(padded + checksum(data).to_bytes(2, "big")) == 0


def test_echo_request_matches_scapy() -> None:
    """Type 8, code 0, checksum, identifier and sequence exactly as scapy builds them."""
    assert build_echo_request(socket.AF_INET, 0x1234, 7, b"schoolmon") == SCAPY_REQUEST


def test_identifier_and_sequence_wrap_to_16_bits() -> None:
    """Sequence 65536 + 7 goes on the wire as 7."""
    assert build_echo_request(socket.AF_INET, 0x11234, 65543, b"schoolmon") == SCAPY_REQUEST


def test_icmpv6_request_leaves_checksum_to_the_kernel() -> None:
    """ICMPv6 type 128; the checksum covers a pseudo-header only the kernel knows."""
    pkt = build_echo_request(socket.AF_INET6, 0xBEEF, 2, b"x")
    assert pkt == bytes([128, 0, 0, 0, 0xBE, 0xEF, 0, 2]) + b"x"


def test_parse_reply_behind_ip_header() -> None:
    """A raw IPv4 socket delivers the IP header first: it is skipped by its IHL."""
    reply = parse_echo_reply(socket.AF_INET, SCAPY_REPLY_WITH_IP, has_ip_header=True)
    assert reply is not None
    assert (reply.ident, reply.seq, reply.payload) == (0x1234, 7, b"schoolmon")


def test_parse_reply_with_ip_options() -> None:
    """An IHL of 6 (4 bytes of options) moves the ICMP header accordingly."""
    icmp = SCAPY_REPLY_WITH_IP[20:]
    header = bytes([0x46]) + SCAPY_REPLY_WITH_IP[1:20] + b"\x01\x01\x01\x00"
    reply = parse_echo_reply(socket.AF_INET, header + icmp, has_ip_header=True)
    assert reply is not None and reply.seq == 7


@pytest.mark.parametrize(
    ("family", "data", "ip_header"),
    [
        pytest.param(socket.AF_INET, SCAPY_REQUEST, False, id="own-request-not-a-reply"),
        pytest.param(socket.AF_INET, SCAPY_REPLY_WITH_IP[:27], True, id="truncated"),
        pytest.param(socket.AF_INET, SCAPY_REPLY_WITH_IP[:12], True, id="truncated-ip"),
        pytest.param(socket.AF_INET, b"\x60" + SCAPY_REPLY_WITH_IP[1:], True, id="not-ipv4"),
        pytest.param(socket.AF_INET, SCAPY_REPLY_WITH_IP[20:-1] + b"N", False,
                     id="bad-checksum"),
        pytest.param(socket.AF_INET, bytes([3, 1]) + SCAPY_REPLY_WITH_IP[22:], False,
                     id="unreachable"),
        pytest.param(socket.AF_INET6, bytes([0, 0, 0, 0, 0, 1, 0, 1]), False,
                     id="v4-reply-type-on-v6"),
        pytest.param(socket.AF_INET6, bytes([129, 1, 0, 0, 0, 1, 0, 1]), False,
                     id="v6-bad-code"),
    ],
)
def test_parse_rejects_what_is_not_an_echo_reply(family: int, data: bytes,
                                                 ip_header: bool) -> None:
    """Requests, errors, truncated and corrupt packets are not replies."""
    assert parse_echo_reply(family, data, ip_header) is None


def test_parse_icmpv6_reply() -> None:
    """Type 129 without an IP header (the kernel strips IPv6 headers)."""
    reply = parse_echo_reply(socket.AF_INET6, bytes([129, 0, 9, 9, 0, 5, 1, 0]) + b"tok",
                             has_ip_header=False)
    assert reply is not None and (reply.ident, reply.seq, reply.payload) == (5, 256, b"tok")


def test_permission_message_names_both_fixes() -> None:
    """The error says what is missing and how to grant either permission."""
    msg = permission_message(socket.AF_INET)
    assert "CAP_NET_RAW" in msg and "setcap cap_net_raw+ep" in msg
    assert "net.ipv4.ping_group_range" in msg and "sysctl -w" in msg


@pytest.mark.parametrize(
    ("rtts", "sent", "expected"),
    [
        ([10.0, 12.0, 11.0, 15.0], 5,
         {"loss": 20.0, "avg": 12.0, "min": 10.0, "max": 15.0, "jitter": (2 + 1 + 4) / 3}),
        ([5.0], 4, {"loss": 75.0, "avg": 5.0, "min": 5.0, "max": 5.0, "jitter": None}),
        ([], 3, {"loss": 100.0, "avg": None, "min": None, "max": None, "jitter": None}),
        ([1.0, 1.0], 2, {"loss": 0.0, "avg": 1.0, "min": 1.0, "max": 1.0, "jitter": 0.0}),
    ],
)
def test_echo_stats_arithmetic(rtts: list[float], sent: int,
                               expected: dict[str, float | None]) -> None:
    """Loss share, mean/min/max RTT, jitter as mean absolute consecutive difference."""
    s = EchoStats(sent, len(rtts), rtts)
    assert s.loss_pct == pytest.approx(expected["loss"])
    assert (s.rtt_avg_ms, s.rtt_min_ms, s.rtt_max_ms) == (
        pytest.approx(expected["avg"]) if expected["avg"] is not None else None,
        expected["min"], expected["max"])
    assert s.jitter_ms == (pytest.approx(expected["jitter"])
                           if expected["jitter"] is not None else None)
    assert s.up is bool(rtts)


def test_echo_stats_frozen_and_nothing_sent() -> None:
    """Frozen; zero sent counts as total loss rather than dividing by zero."""
    s = EchoStats(0, 0, [])
    assert s.loss_pct == 100.0 and not s.up
    with pytest.raises(AttributeError):
        s.sent = 1  # type: ignore[misc]


class FakeClock:
    """Time that moves only when the fake session waits."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class ScriptedSession:
    """Answers echo seq after ``delays[seq]`` seconds (None: never; 'fail': at once error)."""

    def __init__(self, clock: FakeClock, delays: dict[int, float | str | None]) -> None:
        self.clock = clock
        self.delays = delays
        self.sent: dict[int, float] = {}
        self.send_times: list[float] = []
        self.forgotten: list[int] = []

    def send(self, seq: int) -> bool:
        self.send_times.append(self.clock.t)
        if self.delays.get(seq) == "unroutable":
            return False
        self.sent[seq] = self.clock.t
        return True

    def wait(self, timeout: float) -> tuple[list[int], list[int]]:
        due = []
        for seq, at in self.sent.items():
            d = self.delays.get(seq)
            if d == "fail":
                due.append((at, seq, False))
            elif isinstance(d, float):
                due.append((at + d, seq, True))
        due = [x for x in due if x[0] <= self.clock.t + timeout]
        if not due:
            self.clock.t += timeout
            return [], []
        when = min(x[0] for x in due)
        self.clock.t = max(self.clock.t, when)
        hit = [x for x in due if x[0] == when]
        for _, seq, _ in hit:
            del self.sent[seq]
        return [s for _, s, ok in hit if ok], [s for _, s, ok in hit if not ok]

    def forget(self, seq: int) -> None:
        self.forgotten.append(seq)
        self.sent.pop(seq, None)


def test_run_paces_echoes_and_bounds_a_dead_host() -> None:
    """Echoes leave every interval; a dead host costs (count-1)*interval + timeout."""
    clock = FakeClock()
    session = ScriptedSession(clock, {})
    stats = _run(session, count=5, timeout=2.0, interval=0.2, clock=clock)
    assert stats == EchoStats(5, 0, [])
    assert session.send_times == pytest.approx([100.0, 100.2, 100.4, 100.6, 100.8])
    assert clock.t == pytest.approx(100.0 + 4 * 0.2 + 2.0)
    assert sorted(session.forgotten) == [0, 1, 2, 3, 4]


def test_run_measures_rtts_in_send_order_and_drops_late_answers() -> None:
    """An answer after the timeout is a loss; failures at once (refused) are losses too."""
    clock = FakeClock()
    session = ScriptedSession(clock, {0: 0.010, 1: 0.5, 2: 2.5, 3: "fail", 4: 0.030,
                                      5: "unroutable"})
    stats = _run(session, count=6, timeout=1.0, interval=0.1, clock=clock)
    assert stats.sent == 6 and stats.received == 3
    assert stats.rtts_ms == pytest.approx([10.0, 500.0, 30.0])
    assert clock.t == pytest.approx(100.2 + 1.0)  # the last live echo (seq 2) expires
    assert 2 in session.forgotten and 3 in session.forgotten


def test_run_ends_early_when_all_answered() -> None:
    """Nothing waits for the timeout once every echo is answered."""
    clock = FakeClock()
    stats = _run(ScriptedSession(clock, dict.fromkeys(range(3), 0.001)), count=3,
                 timeout=5.0, interval=1.0, clock=clock)
    assert stats.received == 3
    assert clock.t == pytest.approx(102.001)


def settings(**extra: object) -> ReachSettings:
    """The example from the design, with overrides."""
    return ReachSettings.model_validate({
        "type": "reach", "interval": "30s", "count": 5, "timeout": "2s",
        "targets": [{"name": "gateway", "host": "192.168.1.1", "role": "gateway",
                     "method": "icmp"},
                    {"name": "district-hub", "host": "10.20.0.1", "role": "district",
                     "method": "tcp", "port": 443}],
        **extra,
    })


def test_probe_samples_from_injected_echoes() -> None:
    """One sample per target with the reach tags; fields rounded, RTT fields only when up."""
    calls: list[tuple[object, ...]] = []

    def icmp(host: str, count: int, timeout: float, interval: float) -> EchoStats:
        calls.append(("icmp", host, count, timeout, interval))
        return EchoStats(count, 4, [1.0, 2.0, 4.0, 1.0])

    def tcp(host: str, port: int, count: int, timeout: float, interval: float) -> EchoStats:
        calls.append(("tcp", host, port, count, timeout, interval))
        return EchoStats(count, 0, [])

    samples = ReachProbe(settings(), icmp=icmp, tcp=tcp, now_ms=lambda: TS).collect()
    check_samples(samples)
    assert sorted(calls) == [("icmp", "192.168.1.1", 5, 2.0, 0.2),
                             ("tcp", "10.20.0.1", 443, 5, 2.0, 0.2)]
    assert samples == [
        Sample("reach", TS, {"target": "gateway", "target_role": "gateway", "method": "icmp"},
               {"up": True, "loss_pct": 20.0, "rtt_ms": 2.0, "rtt_min_ms": 1.0,
                "rtt_max_ms": 4.0, "jitter_ms": 2.0}),
        Sample("reach", TS, {"target": "district-hub", "target_role": "district",
                             "method": "tcp"}, {"up": False, "loss_pct": 100.0}),
    ]


def test_targets_are_probed_concurrently() -> None:
    """Each target waits for the other to start: only parallel probing gets past."""
    both = threading.Barrier(2, timeout=5)

    def icmp(host: str, count: int, timeout: float, interval: float) -> EchoStats:
        both.wait()
        return EchoStats(1, 1, [1.0])

    def tcp(host: str, port: int, count: int, timeout: float, interval: float) -> EchoStats:
        both.wait()
        return EchoStats(1, 1, [2.0])

    samples = ReachProbe(settings(), icmp=icmp, tcp=tcp, now_ms=lambda: TS).collect()
    assert [s.fields["up"] for s in samples] == [True, True]


def test_unresolvable_target_is_down_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A name that does not resolve gives up=false, with a warning naming the target."""
    def icmp(host: str, count: int, timeout: float, interval: float) -> EchoStats:
        raise ProbeError(f"{host}: cannot resolve: Name or service not known")

    probe = ReachProbe(settings(), icmp=icmp, tcp=lambda *a: EchoStats(5, 5, [1.0] * 5),
                       now_ms=lambda: TS)
    with caplog.at_level(logging.WARNING, logger="agent.probes.reach"):
        samples = probe.collect()
    assert [s.fields["up"] for s in samples] == [False, True]
    assert samples[0].fields == {"up": False, "loss_pct": 100.0}
    assert any("reach gateway (192.168.1.1)" in r.getMessage() for r in caplog.records)


def test_icmp_not_permitted_skips_target_not_a_false_down(
        caplog: pytest.LogCaptureFixture) -> None:
    """No ICMP permission: no misleading down sample, an error naming the permission."""
    def icmp(host: str, count: int, timeout: float, interval: float) -> EchoStats:
        raise IcmpPermissionError(permission_message(socket.AF_INET))

    probe = ReachProbe(settings(), icmp=icmp, tcp=lambda *a: EchoStats(5, 5, [1.0] * 5),
                       now_ms=lambda: TS)
    with caplog.at_level(logging.ERROR, logger="agent.probes.reach"):
        samples = probe.collect()
    assert [s.tags["target"] for s in samples] == ["district-hub"]
    assert any("CAP_NET_RAW" in r.getMessage() for r in caplog.records)
    only_icmp = settings(targets=[{"name": "gw", "host": "192.168.1.1", "role": "gateway"}])
    with pytest.raises(IcmpPermissionError, match="no target could be probed"):
        ReachProbe(only_icmp, icmp=icmp, now_ms=lambda: TS).collect()


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        ([{"name": "a", "host": "h", "role": "gateway", "method": "tcp"}], "needs a port"),
        ([{"name": "a", "host": "h", "role": "gateway", "port": 80}], "takes no port"),
        ([{"name": "a", "host": "h", "role": "router"}], "role"),
        ([{"name": "a", "host": "h", "role": "dns", "method": "udp"}], "method"),
        ([{"name": "a", "host": "h", "role": "dns"}, {"name": "a", "host": "g", "role": "dns"}],
         "duplicate target name 'a'"),
        ([], "at least 1"),
        ([{"name": "a", "host": "h", "role": "dns", "method": "tcp", "port": 70000}], "port"),
    ],
)
def test_settings_refuse_bad_targets(targets: list[dict[str, object]], match: str) -> None:
    """tcp needs a port, icmp none; roles and methods are fixed lists; names unique."""
    with pytest.raises(ValidationError, match=match):
        settings(targets=targets)


def test_settings_defaults_build_and_run_timeout() -> None:
    """Defaults, durations, build() wiring the real echo functions, the longest run."""
    s = ReachSettings.model_validate({"type": "reach", "echo_interval": "500ms", "targets": [
        {"name": "dns", "host": "223.5.5.5", "role": "dns"}]})
    assert (s.interval, s.count, s.echo_timeout, s.echo_interval) == (30.0, 5, 2.0, 0.5)
    assert s.run_timeout() == pytest.approx(4 * 0.5 + 2.0 + 1.0)
    probe = s.build()
    assert isinstance(probe, ReachProbe)
    from agent.probes.reach import icmp_echo, tcp_connect
    assert (probe.icmp, probe.tcp) == (icmp_echo, tcp_connect)


def test_stats_fields_round_to_microseconds() -> None:
    """Float noise below a microsecond is not stored."""
    fields = stats_fields(EchoStats(3, 3, [0.1234567, 0.2, 0.3]))
    assert fields["rtt_min_ms"] == 0.123 and fields["loss_pct"] == 0.0
