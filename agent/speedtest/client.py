"""Speed-test client for the LibreSpeed backend API: latency, download, upload.

Download and upload use N parallel TCP streams for ``duration`` seconds; the first ``warmup``
seconds (TCP slow start) are discarded and the rate is the bytes moved between the end of the
warm-up and the end of the test.  Upload is counted as bytes the kernel has handed to the
network and had acknowledged (sent minus SIOCOUTQ), not bytes written into the socket buffer:
on a 4 Mbit/s rural link a few megabytes of buffer would otherwise inflate the figure by
seconds of traffic.  A byte cap ends a test early for metered links.
"""

from __future__ import annotations

import fcntl
import http.client
import itertools
import socket
import statistics
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MIB = 1 << 20
_CHUNK = b"\0" * (256 * 1024)  # upload payload; the server discards it
UPLOAD_REQUEST_BYTES = 256 * MIB  # well under the server's 1 GiB body limit


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


@dataclass(frozen=True)
class SpeedtestResult:
    """One test: the fields of the ``speedtest`` sample kind."""

    server: str
    down_mbps: float
    up_mbps: float
    rtt_ms: float
    jitter_ms: float
    bytes: int
    duration_s: float


@dataclass
class _Stream:
    sock: socket.socket | None = None
    moved: int = 0  # download: bytes received; upload: bytes written to the socket
    error: str | None = None


def measure_latency(ep: Endpoint, count: int = 10, timeout: float = 3.0) -> list[float]:
    """Round-trip times in ms of GET empty.php on one keep-alive connection."""
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            conn.request("GET", f"{ep.base}/backend/empty.php?r={start}")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise OSError(f"empty.php answered {resp.status}")
            times.append((time.perf_counter() - start) * 1000)
    finally:
        conn.close()
    return times


def jitter(times: list[float]) -> float:
    """Mean absolute difference of consecutive round trips."""
    if len(times) < 2:
        return 0.0
    return statistics.fmean(abs(b - a) for a, b in itertools.pairwise(times))


def _unacked(sock: socket.socket) -> int:
    # SIOCOUTQ (== TIOCOUTQ on Linux): bytes in the send queue not yet acknowledged by the peer.
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])
    except OSError:
        return 0


def _download_stream(ep: Endpoint, st: _Stream, stop: threading.Event, timeout: float,
                     cap_bytes: int) -> None:
    buf = bytearray(256 * 1024)
    view = memoryview(buf)
    try:
        sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
        st.sock = sock
        while not stop.is_set() and st.moved < cap_bytes:
            size_mib = max(1, min(100, -(-(cap_bytes - st.moved) // MIB)))
            sock.sendall(f"GET {ep.base}/backend/garbage.php?ckSize={size_mib} HTTP/1.1\r\n"
                         f"Host: {ep.host}\r\n\r\n".encode())
            # Skip the response head, then count the body.
            head = b""
            while b"\r\n\r\n" not in head:
                got = sock.recv(4096)
                if not got:
                    raise ConnectionError("server closed the connection")
                head += got
            head, _, rest = head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(head.split(b"\r\n")[0].decode("latin-1"))
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            st.moved += len(rest)
            remaining = length - len(rest)
            # Each stream stops at its share of the byte cap, exactly.
            while remaining > 0 and not stop.is_set() and st.moved < cap_bytes:
                n = sock.recv_into(view, min(remaining, len(buf), cap_bytes - st.moved))
                if n == 0:
                    raise ConnectionError("server closed mid-download")
                st.moved += n
                remaining -= n
    except OSError as exc:
        if not stop.is_set():
            st.error = str(exc)


def _upload_stream(ep: Endpoint, st: _Stream, stop: threading.Event, timeout: float,
                   cap_bytes: int) -> None:
    try:
        sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
        st.sock = sock
        while not stop.is_set() and st.moved < cap_bytes:
            body = min(UPLOAD_REQUEST_BYTES, cap_bytes - st.moved)
            sock.sendall(f"POST {ep.base}/backend/empty.php HTTP/1.1\r\nHost: {ep.host}\r\n"
                         f"Content-Type: application/octet-stream\r\n"
                         f"Content-Length: {body}\r\n\r\n".encode())
            # ``moved`` counts payload only; the head's ~150 bytes may still sit in the unacked
            # queue that ``_transfer`` subtracts, an error far below a measurement's resolution.
            left = body
            while left > 0 and not stop.is_set():
                n = sock.send(_CHUNK[: min(len(_CHUNK), left)])
                st.moved += n
                left -= n
            if left == 0:
                answer = sock.recv(4096)
                if not answer.startswith(b"HTTP/1.1 200"):
                    raise ConnectionError(answer.split(b"\r\n")[0].decode("latin-1"))
    except OSError as exc:
        if not stop.is_set():
            st.error = str(exc)


def _transfer(ep: Endpoint, *, upload: bool, streams: int, duration: float, warmup: float,
              byte_cap: int, timeout: float, clock: Callable[[], float]) -> tuple[float, int]:
    """Run one direction; returns (Mbit/s after warm-up, bytes moved)."""
    stop = threading.Event()
    states = [_Stream() for _ in range(streams)]
    per_stream = max(MIB // 4, byte_cap // streams)
    workers = [
        threading.Thread(
            target=_upload_stream if upload else _download_stream,
            args=(ep, st, stop, timeout, per_stream),
            daemon=True)
        for st in states
    ]

    def moved() -> int:
        if not upload:
            return sum(s.moved for s in states)
        return sum(s.moved - (_unacked(s.sock) if s.sock else 0) for s in states)

    start = clock()
    for w in workers:
        w.start()
    mark_t, mark_b = None, 0
    end_t, end_b = start, 0
    while True:
        time.sleep(0.05)
        now, total = clock(), moved()
        if mark_t is None and now - start >= warmup:
            mark_t, mark_b = now, total
        end_t, end_b = now, total
        if now - start >= duration or not any(w.is_alive() for w in workers):
            break
    stop.set()
    for st in states:
        if st.sock is not None:
            st.sock.close()
    for w in workers:
        w.join(timeout)
    errors = [s.error for s in states if s.error]
    if errors and end_b == 0:
        raise OSError(errors[0])
    if mark_t is None or end_t - mark_t < 0.2:  # cap reached during warm-up: use it all
        mark_t, mark_b = start, 0
    return (end_b - mark_b) * 8 / (end_t - mark_t) / 1e6, end_b


def run_speedtest(server: str, *, streams: int = 4, duration: float = 10.0,
                  warmup: float | None = None, byte_cap: int = 2**40,
                  timeout: float = 10.0,
                  clock: Callable[[], float] = time.monotonic) -> SpeedtestResult:
    """Latency, then download, then upload against one server; raises OSError/ValueError."""
    ep = Endpoint.parse(server)
    warm = min(2.0, duration * 0.25) if warmup is None else warmup
    begun = clock()
    times = measure_latency(ep, timeout=timeout)
    down, down_bytes = _transfer(ep, upload=False, streams=streams, duration=duration,
                                 warmup=warm, byte_cap=byte_cap // 2, timeout=timeout,
                                 clock=clock)
    up, up_bytes = _transfer(ep, upload=True, streams=streams, duration=duration, warmup=warm,
                             byte_cap=max(MIB, byte_cap - down_bytes), timeout=timeout,
                             clock=clock)
    return SpeedtestResult(
        server=server, down_mbps=round(down, 3), up_mbps=round(up, 3),
        rtt_ms=round(statistics.median(times), 3), jitter_ms=round(jitter(times), 3),
        bytes=down_bytes + up_bytes, duration_s=round(clock() - begun, 3),
    )


def pick_server(servers: list[str], timeout: float = 3.0) -> str:
    """The server with the lowest median latency; raises OSError when none answers."""
    best: tuple[float, str] | None = None
    errors = []
    for url in servers:
        try:
            rtt = statistics.median(measure_latency(Endpoint.parse(url), 5, timeout))
        except (OSError, ValueError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {exc}")
            continue
        if best is None or rtt < best[0]:
            best = (rtt, url)
    if best is None:
        raise OSError("no speed-test server answered: " + "; ".join(errors))
    return best[1]
