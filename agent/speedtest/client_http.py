"""The speed-test client's HTTP/1.1 on plain sockets, bounded in time and bytes.

http.client cannot bound a response: its buffered reads wait for a whole amount, and each byte
that arrives restarts the socket timeout, so a server sending one byte a second holds a read for
days.  Here every wait is cut to what is left of one :class:`Deadline`, every byte is granted by
a :class:`Meter` before it is read or sent, and a body is drained in chunks, never held.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 16 * 1024
_READ = 256 * 1024


class SpeedtestError(OSError):
    """A test (or one phase of it) that did not measure; ``moved`` is what it cost in bytes."""

    def __init__(self, message: str, moved: int) -> None:
        super().__init__(message)
        self.moved = moved

    def __str__(self) -> str:
        return str(self.args[0])


class BudgetSpentError(SpeedtestError):
    """The byte cap is reached: the streams stop, it is no failure of the server."""


@dataclass(frozen=True)
class Endpoint:
    """Where a LibreSpeed-compatible backend lives."""

    host: str
    port: int
    base: str  # path prefix before /backend/...

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """http://host:port[/prefix] -> Endpoint; raises ValueError."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{url!r}: expected http://HOST[:PORT][/PATH]")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))

    @property
    def authority(self) -> str:
        """HOST:PORT as an HTTP Host header (RFC 9110): an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def where(self) -> str:
        """How errors name the server."""
        return f"speed-test server {self.authority}"


class Deadline:
    """The end of a whole test on the monotonic clock."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.end = clock() + seconds

    def left(self) -> float:
        """Seconds left (negative once passed)."""
        return self.end - self.clock()


class Meter:
    """Bytes a test may still move, in both directions, shared by its threads."""

    def __init__(self, cap: int, parent: Meter | None = None) -> None:
        self.cap = cap
        self.parent = parent
        self.moved = 0
        self._lock = threading.Lock()

    def left(self) -> int:
        """Bytes that may still be granted."""
        own = self.cap - self.moved
        return own if self.parent is None else min(own, self.parent.left())

    def exhausted(self) -> bool:
        """Whether the cap is reached."""
        return self.left() <= 0

    def take(self, want: int) -> int:
        """Grant up to ``want`` bytes, counted now, before they are read or sent."""
        with self._lock:
            granted = max(0, min(want, self.cap - self.moved))
            if self.parent is not None:
                granted = self.parent.take(granted)
            self.moved += granted
            return granted

    def give_back(self, unused: int) -> None:
        """Return the part of a grant that did not move."""
        if unused > 0:
            with self._lock:
                self.moved -= unused
            if self.parent is not None:
                self.parent.give_back(unused)

    def share(self, cap: int) -> Meter:
        """A meter of at most ``cap`` bytes that also counts against this one."""
        return Meter(cap, self)


class Stream:
    """One HTTP/1.1 keep-alive connection under a deadline and a meter."""

    def __init__(self, ep: Endpoint, meter: Meter, deadline: Deadline, timeout: float) -> None:
        self.ep = ep
        self.meter = meter
        self.deadline = deadline
        self.timeout = timeout  # longest silence of the peer
        self.sock: socket.socket | None = None
        self._buf = b""  # body bytes that came with the head

    def __enter__(self) -> Stream:
        self.sock = socket.create_connection((self.ep.host, self.ep.port), self._wait())
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the socket; wakes a thread blocked on it (shutdown, not only close)."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # not connected (any more)
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _wait(self) -> float:
        left = self.deadline.left()
        if left <= 0:
            raise SpeedtestError(f"{self.ep.where}: no complete answer within the test's "
                                 f"deadline of {self.deadline.seconds:g}s", self.meter.moved)
        return min(self.timeout, left)

    def _socket(self) -> socket.socket:
        if self.sock is None:
            raise ConnectionError(f"{self.ep.where}: not connected")
        self.sock.settimeout(self._wait())
        return self.sock

    def send(self, data: bytes) -> None:
        """Send all of ``data`` (a request head) or raise."""
        if self.meter.take(len(data)) < len(data):
            raise BudgetSpentError("byte cap reached", self.meter.moved)
        self._socket().sendall(data)

    def send_some(self, data: bytes) -> int:
        """Send what the meter grants of ``data``; the bytes the socket took."""
        granted = self.meter.take(len(data))
        if granted == 0:
            raise BudgetSpentError("byte cap reached", self.meter.moved)
        try:
            sent = self._socket().send(data[:granted])
        except BaseException:
            self.meter.give_back(granted)
            raise
        self.meter.give_back(granted - sent)
        return sent

    def _recv(self, size: int) -> bytes:
        granted = self.meter.take(size)
        if granted == 0:
            raise BudgetSpentError("byte cap reached", self.meter.moved)
        try:
            got = self._socket().recv(granted)
        except TimeoutError:
            self.meter.give_back(granted)
            self._wait()  # the deadline's error, when it is the deadline that passed
            raise TimeoutError(f"{self.ep.where}: silent for {self.timeout:g}s") from None
        self.meter.give_back(granted - len(got))
        if not got:
            raise ConnectionError(f"{self.ep.where} closed the connection")
        return got

    def read_head(self) -> tuple[int, int]:
        """(status, Content-Length) of the next response; its head is at most 16 KiB."""
        data = self._buf
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEAD_BYTES:
                raise SpeedtestError(f"{self.ep.where}: response head over {MAX_HEAD_BYTES} "
                                     "bytes", self.meter.moved)
            data += self._recv(4096)
        head, _, self._buf = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise SpeedtestError(f"{self.ep.where}: not an HTTP answer: {lines[0][:60]!r}",
                                 self.meter.moved)
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:])}
        length = headers.get("content-length", "")
        if "chunked" in headers.get("transfer-encoding", "").lower() or not length.isdigit():
            # A body without a length cannot be counted to its end (some PHP backends answer
            # garbage.php chunked): no figure rather than a made-up one.
            raise SpeedtestError(f"{self.ep.where}: answer without Content-Length (chunked?): "
                                 "its size cannot be measured", self.meter.moved)
        return int(parts[1]), int(length)

    def drain(self, length: int, *, stop: threading.Event | None = None,
              progress: Callable[[int], None] = lambda n: None) -> None:
        """Read and discard ``length`` body bytes (until ``stop``), reporting each chunk."""
        take = min(length, len(self._buf))
        self._buf, length = self._buf[take:], length - take
        if take:
            progress(take)
        while length > 0 and (stop is None or not stop.is_set()):
            got = self._recv(min(length, _READ))
            length -= len(got)
            progress(len(got))
