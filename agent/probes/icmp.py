"""ICMP echo packets and sockets without scapy (scapy costs ~130 MB RSS in a long-running agent).

Two socket kinds can send echoes: a raw socket (needs CAP_NET_RAW) and the unprivileged
"ping" datagram socket (needs the process's group inside ``net.ipv4.ping_group_range``; it
covers ICMPv6 too).  Which one works is found once per address family and cached.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Final, Literal

from agent.probes.base import ProbeError

ECHO_REQUEST: Final[dict[int, int]] = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY: Final[dict[int, int]] = {socket.AF_INET: 0, socket.AF_INET6: 129}
_HEADER: Final = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
PING_GROUP_RANGE: Final = "/proc/sys/net/ipv4/ping_group_range"

SocketKind = Literal["raw", "dgram"]


class IcmpPermissionError(ProbeError):
    """Neither a raw nor a datagram ICMP socket may be opened by this process."""


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_echo_request(family: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An echo request; the checksum is filled for IPv4 (the kernel computes it for ICMPv6)."""
    kind = ECHO_REQUEST[family]
    header = _HEADER.pack(kind, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    if family == socket.AF_INET6:
        return header + payload
    csum = checksum(header + payload)
    return _HEADER.pack(kind, 0, csum, ident & 0xFFFF, seq & 0xFFFF) + payload


@dataclass(frozen=True)
class EchoReply:
    """The parts of an echo reply that identify it."""

    ident: int
    seq: int
    payload: bytes


def parse_echo_reply(family: int, data: bytes, has_ip_header: bool) -> EchoReply | None:
    """An echo reply from what a socket received, or None for anything else (other ICMP
    types, our own requests seen on a raw socket, truncated or corrupt packets)."""
    if has_ip_header:  # only raw IPv4 sockets deliver the IP header
        if len(data) < 20 or data[0] >> 4 != 4:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < _HEADER.size:
        return None
    kind, code, _csum, ident, seq = _HEADER.unpack_from(data)
    if kind != ECHO_REPLY[family] or code != 0:
        return None
    # IPv4 checksums are checked here; the kernel verifies ICMPv6 ones before delivery.
    if family == socket.AF_INET and checksum(data) != 0:
        return None
    return EchoReply(ident, seq, data[_HEADER.size :])


def _ping_group_range() -> str:
    try:
        with open(PING_GROUP_RANGE, encoding="ascii") as f:
            return " ".join(f.read().split())
    except OSError:
        return "unknown"


def permission_message(family: int) -> str:
    """Why ICMP echo is impossible here and the two ways to allow it."""
    gid = os.getgid()
    ver = "ICMPv6" if family == socket.AF_INET6 else "ICMP"
    return (
        f"{ver} echo not permitted: this process has no CAP_NET_RAW (grant it with "
        f"'setcap cap_net_raw+ep <python executable>' or AmbientCapabilities=CAP_NET_RAW in the "
        f"systemd unit) and its group {gid} is outside net.ipv4.ping_group_range "
        f"('{_ping_group_range()}'; allow it with 'sysctl -w net.ipv4.ping_group_range="
        f"\"{gid} {gid}\"')"
    )


class IcmpSockets:
    """Opens ICMP sockets of the kind this process may use, found on first use and cached."""

    def __init__(self, order: tuple[SocketKind, ...] = ("raw", "dgram")) -> None:
        self.order = order
        self._kind: dict[int, SocketKind] = {}
        self._lock = threading.Lock()

    def open(self, family: int) -> tuple[socket.socket, SocketKind]:
        """A new non-blocking ICMP socket for ``family``; raises IcmpPermissionError."""
        with self._lock:
            known = self._kind.get(family)
        kinds = (known,) if known else self.order
        for kind in kinds:
            try:
                sock = _new_socket(family, kind)
            except PermissionError:
                continue
            with self._lock:
                self._kind[family] = kind
            return sock, kind
        if known:  # permission withdrawn since (capability dropped): find out again
            with self._lock:
                self._kind.pop(family, None)
            return self.open(family)
        # Failures are not cached: fixing the sysctl takes effect without a restart.
        raise IcmpPermissionError(permission_message(family))

    def kind(self, family: int) -> SocketKind | None:
        """The socket kind found for ``family`` (None before the first successful open)."""
        with self._lock:
            return self._kind.get(family)


def _new_socket(family: int, kind: SocketKind) -> socket.socket:
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    sock_type = socket.SOCK_RAW if kind == "raw" else socket.SOCK_DGRAM
    sock = socket.socket(family, sock_type, proto)
    sock.setblocking(False)
    return sock


DEFAULT_SOCKETS: Final = IcmpSockets()


def attach_echo_reply_filter(sock: socket.socket, family: int, ident: int) -> bool:
    """Let a raw ICMP socket receive only echo replies carrying ``ident``; False if refused.

    A raw socket gets a copy of every ICMP packet of the host: with one socket per target, N
    targets would each parse N replies (N^2 work, measured at 2 % of a core for 50 targets).
    The classic BPF program below runs in the kernel instead.
    """
    import ctypes

    ld_x_iphdr, ld_b_ind, ld_h_ind, jeq, ret = 0xB1, 0x50, 0x48, 0x15, 0x06
    if family == socket.AF_INET:  # raw IPv4 sockets see the IP header: X = its length
        reply_type, head = 0, [(ld_x_iphdr, 0, 0, 0)]
    else:  # raw ICMPv6 sockets start at the ICMPv6 header
        reply_type, head = 129, [(0x01, 0, 0, 0)]  # ldx #0
    program = [*head,
               (ld_b_ind, 0, 0, 0),             # A = type
               (jeq, 0, 3, reply_type),         # echo reply? else drop
               (ld_h_ind, 0, 0, 4),             # A = identifier
               (jeq, 0, 1, ident),              # ours? else drop
               (ret, 0, 0, 0x40000),            # accept
               (ret, 0, 0, 0)]                  # drop
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("HxxxxxxQ", len(program), ctypes.addressof(buf))
    try:
        sock.setsockopt(socket.SOL_SOCKET, 26, fprog)  # SO_ATTACH_FILTER
    except OSError:
        return False
    return True
