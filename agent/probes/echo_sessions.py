"""The two ways reach sends echoes: ICMP echo requests, or TCP connects.

Both follow the session interface of ``agent.probes.reach._run``: ``send(seq)`` starts echo
``seq``, ``wait(t)`` reports answered and failed seqs, ``forget(seq)`` drops an expired one.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket

from agent.probes.base import ProbeError
from agent.probes.icmp import (
    IcmpSockets,
    attach_echo_reply_filter,
    build_echo_request,
    parse_echo_reply,
)

Address = tuple[str, int] | tuple[str, int, int, int]


def resolve(host: str, sock_type: int) -> tuple[socket.AddressFamily, Address]:
    """The first address of ``host`` (IPv4 or IPv6); raises ProbeError when it does not resolve."""
    try:
        info = socket.getaddrinfo(host, None, 0, sock_type)
    except (socket.gaierror, UnicodeError) as exc:
        raise ProbeError(f"{host}: cannot resolve: {exc}") from None
    family, _, _, _, addr = info[0]
    return family, addr  # type: ignore[return-value]


class IcmpSession:
    """Echo requests to one host over one ICMP socket."""

    def __init__(self, host: str, sockets: IcmpSockets) -> None:
        self.family, addr = resolve(host, socket.SOCK_RAW)
        self.addr = (addr[0], 0, *addr[2:])
        self.sock, self.kind = sockets.open(self.family)
        # A raw socket sees every ICMP packet of the host: identifier and token tell ours.
        self.ident = int.from_bytes(os.urandom(2), "big")
        self.token = os.urandom(8)
        if self.kind == "raw":
            # Without it every raw socket parses every ICMP packet of the host (N^2 for N
            # targets); with it, the kernel hands each socket only its own replies.
            attach_echo_reply_filter(self.sock, self.family, self.ident)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ)

    def send(self, seq: int) -> bool:
        """Send echo request ``seq``; False when it could not leave (no route)."""
        packet = build_echo_request(self.family, self.ident, seq, self.token + bytes(24))
        try:
            self.sock.sendto(packet, self.addr)
        except OSError:  # no route, link down, host unreachable: this echo is lost
            return False
        return True

    def wait(self, timeout: float) -> tuple[list[int], list[int]]:
        """Our echo replies that arrived within ``timeout`` (ICMP has no failures here)."""
        answered: list[int] = []
        if not self.selector.select(timeout):
            return answered, []
        raw_v4 = self.kind == "raw" and self.family == socket.AF_INET
        while True:
            try:
                data = self.sock.recv(65535)
            except OSError:  # drained, or an ICMP error reported on a datagram socket
                return answered, []
            reply = parse_echo_reply(self.family, data, raw_v4)
            # With a datagram socket the kernel sets the identifier and delivers only ours.
            if (reply is not None and reply.payload.startswith(self.token)
                    and (self.kind == "dgram" or reply.ident == self.ident)):
                answered.append(reply.seq)

    def forget(self, seq: int) -> None:
        """Nothing to release: one socket serves every echo."""

    def close(self) -> None:
        """Close the socket."""
        self.selector.close()
        self.sock.close()


class TcpSession:
    """Each echo is a TCP connect to host:port (its own socket)."""

    def __init__(self, host: str, port: int) -> None:
        self.family, addr = resolve(host, socket.SOCK_STREAM)
        self.addr = (addr[0], port, *addr[2:])
        self.selector = selectors.DefaultSelector()
        self.socks: dict[int, socket.socket] = {}
        self.connected: list[int] = []

    def send(self, seq: int) -> bool:
        """Start a non-blocking connect; False when refused or unroutable at once."""
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        rc = sock.connect_ex(self.addr)
        if rc == 0:
            self.connected.append(seq)
        elif rc not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            sock.close()
            return False
        else:
            self.selector.register(sock, selectors.EVENT_WRITE, seq)
        self.socks[seq] = sock
        return True

    def wait(self, timeout: float) -> tuple[list[int], list[int]]:
        """Connects that completed (answered) or were refused/reset (failed)."""
        answered, failed = self.connected, list[int]()
        self.connected = []
        if answered:
            timeout = 0.0
        # With nothing registered this still sleeps until the next echo is due (epoll).
        for key, _ in self.selector.select(timeout):
            seq = key.data
            ok = key.fileobj.getsockopt(  # type: ignore[union-attr]
                socket.SOL_SOCKET, socket.SO_ERROR) == 0
            (answered if ok else failed).append(seq)
        for seq in answered:
            self.forget(seq)
        return answered, failed

    def forget(self, seq: int) -> None:
        """Close the connect's socket."""
        sock = self.socks.pop(seq, None)
        if sock is not None:
            if _registered(self.selector, sock):
                self.selector.unregister(sock)
            sock.close()

    def close(self) -> None:
        """Close every socket still open."""
        for seq in list(self.socks):
            self.forget(seq)
        self.selector.close()


def _registered(selector: selectors.BaseSelector, sock: socket.socket) -> bool:
    try:
        selector.get_key(sock)
    except KeyError:
        return False
    return True


