"""Speed-test client for the LibreSpeed backend API: latency, download, upload.

Download and upload use N parallel TCP streams for ``duration`` seconds; the first ``warmup``
seconds (TCP slow start) are discarded and the rate is the bytes moved between the end of the
warm-up and the end of the test.  Upload is counted as bytes the kernel has handed to the
network and had acknowledged (sent minus SIOCOUTQ), not bytes written into the socket buffer:
on a 4 Mbit/s rural link a few megabytes of buffer would otherwise inflate the figure by
seconds of traffic.

The server may be anything on the LAN, so nothing it does is unbounded (issue 18): the whole
test runs under one deadline (every socket wait is cut to what is left of it, so one byte a
second cannot stretch it), every byte in either direction is granted by a :class:`Meter`
before it is read or sent (the byte cap holds for the latency phase and failed tests too), and
bodies are drained in bounded chunks, never read whole.  A test that did not measure raises
:class:`SpeedtestError` carrying the bytes it cost; it never reports a figure.
"""

from __future__ import annotations

import fcntl
import itertools
import socket
import statistics
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.speedtest.client_http import Deadline, Endpoint, Meter, SpeedtestError, Stream

__all__ = ["Endpoint", "SpeedtestError", "SpeedtestResult", "jitter", "measure_latency",
           "pick_server", "run_speedtest"]

MIB = 1 << 20
_CHUNK = b"\0" * (256 * 1024)  # upload payload; the server discards it
UPLOAD_REQUEST_BYTES = 256 * MIB  # well under the server's 1 GiB body limit
MAX_EMPTY_BODY = 64 * 1024  # an empty.php answer larger than this is not a speed-test server
MIN_WINDOW_S = 0.05  # one sampling period: a rate over less time is no measurement


@dataclass(frozen=True)
class SpeedtestResult:
    """One test: the fields of the ``speedtest`` sample kind, and the evidence behind them."""

    server: str
    down_mbps: float
    up_mbps: float
    rtt_ms: float
    jitter_ms: float
    bytes: int  # both directions and the latency phase: what the test cost
    duration_s: float
    down_bytes: int = 0  # payload counted in the download's rate window
    up_bytes: int = 0
    down_s: float = 0.0  # length of the rate windows
    up_s: float = 0.0
    streams_ok: int = 0  # streams that ran to the end in both directions (the fewer of the two)


def measure_latency(ep: Endpoint, count: int = 10, timeout: float = 3.0, *,
                    meter: Meter | None = None, deadline: Deadline | None = None) -> list[float]:
    """Round-trip times in ms of GET empty.php on one keep-alive connection."""
    meter = meter or Meter(1 << 62)
    deadline = deadline or Deadline(timeout * (count + 1))
    times = []
    with Stream(ep, meter, deadline, timeout) as stream:
        for _ in range(count):
            start = time.perf_counter()
            stream.send(f"GET {ep.base}/backend/empty.php?r={start} HTTP/1.1\r\n"
                        f"Host: {ep.authority}\r\n\r\n".encode())
            status, length = stream.read_head()
            if length > MAX_EMPTY_BODY:
                raise SpeedtestError(f"{ep.where}: empty.php announced {length} bytes: not a "
                                     "speed-test server", meter.moved)
            stream.drain(length)
            if status != 200:
                raise SpeedtestError(f"{ep.where}: empty.php answered {status}", meter.moved)
            times.append((time.perf_counter() - start) * 1000)
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
    except (OSError, ValueError):  # closed (fileno -1): whatever was queued has gone
        return 0


@dataclass
class _Flow:
    stream: Stream | None = None
    moved: int = 0  # download: body bytes received; upload: body bytes written to the socket
    error: str | None = None


def _download(ep: Endpoint, flow: _Flow, stop: threading.Event, stream: Stream) -> None:
    while not stop.is_set():
        size_mib = max(1, min(100, -(-stream.meter.left() // MIB)))
        stream.send(f"GET {ep.base}/backend/garbage.php?ckSize={size_mib} HTTP/1.1\r\n"
                    f"Host: {ep.authority}\r\n\r\n".encode())
        status, length = stream.read_head()
        if status != 200:
            raise SpeedtestError(f"{ep.where}: garbage.php answered {status}", 0)
        stream.drain(length, stop=stop, progress=lambda n: setattr(flow, "moved",
                                                                    flow.moved + n))


def _upload(ep: Endpoint, flow: _Flow, stop: threading.Event, stream: Stream) -> None:
    while not stop.is_set():
        body = min(UPLOAD_REQUEST_BYTES, stream.meter.left())
        if body <= 0:
            return
        stream.send(f"POST {ep.base}/backend/empty.php HTTP/1.1\r\nHost: {ep.authority}\r\n"
                    f"Content-Type: application/octet-stream\r\n"
                    f"Content-Length: {body}\r\n\r\n".encode())
        left = body
        while left > 0 and not stop.is_set():
            n = stream.send_some(_CHUNK[: min(len(_CHUNK), left)])
            flow.moved += n
            left -= n
        if left == 0:
            status, length = stream.read_head()
            stream.drain(min(length, MAX_EMPTY_BODY))
            if status != 200:
                raise SpeedtestError(f"{ep.where}: upload answered {status}", 0)


def _run_flow(work: Callable[[Endpoint, _Flow, threading.Event, Stream], None], ep: Endpoint,
              flow: _Flow, stop: threading.Event, *, meter: Meter, deadline: Deadline,
              timeout: float) -> None:
    try:
        with Stream(ep, meter, deadline, timeout) as stream:
            flow.stream = stream
            work(ep, flow, stop, stream)
    except (OSError, ValueError) as exc:
        if not stop.is_set() and not meter.exhausted():
            flow.error = str(exc)


@dataclass(frozen=True)
class _Transfer:
    mbps: float
    window_bytes: int  # counted in the rate window
    window_s: float
    streams_ok: int


def _transfer(ep: Endpoint, *, upload: bool, streams: int, duration: float, warmup: float,
              meter: Meter, deadline: Deadline, timeout: float,
              clock: Callable[[], float]) -> _Transfer:
    """Run one direction; SpeedtestError when it did not measure."""
    stop = threading.Event()
    flows = [_Flow() for _ in range(streams)]
    work = _upload if upload else _download
    workers = [threading.Thread(target=_run_flow, daemon=True, args=(work, ep, f, stop),
                                kwargs={"meter": meter, "deadline": deadline, "timeout": timeout})
               for f in flows]

    def moved() -> int:
        if not upload:
            return sum(f.moved for f in flows)
        return sum(f.moved - (_unacked(f.stream.sock) if f.stream and f.stream.sock else 0)
                   for f in flows)

    start = clock()
    for w in workers:
        w.start()
    mark_t, mark_b = None, 0
    end_t, end_b = start, 0
    try:
        while True:
            time.sleep(0.05)  # the sampling period of the rate, not a wait for an event
            now, total = clock(), moved()
            if mark_t is None and now - start >= warmup:
                mark_t, mark_b = now, total
            end_t, end_b = now, total
            if (now - start >= duration or deadline.left() <= 0
                    or not any(w.is_alive() for w in workers)):
                break
    finally:
        stop.set()
        for f in flows:  # wakes a worker blocked in recv or send at once
            if f.stream is not None:
                f.stream.close()
        for w in workers:
            w.join(max(0.1, min(timeout, deadline.left())))
    errors = [f.error for f in flows if f.error]
    direction = "upload" if upload else "download"
    if mark_t is None or end_t - mark_t < 0.2:  # cap reached during warm-up: use it all
        mark_t, mark_b = start, 0
    if len(errors) == streams:  # bytes may have moved, but no stream did what a test does
        raise SpeedtestError(f"{ep.where}: {direction} did not measure: {errors[0]}",
                             meter.moved)
    if end_b - mark_b <= 0 or end_t - mark_t < MIN_WINDOW_S:
        why = errors[0] if errors else (
            f"{end_b - mark_b} bytes in {end_t - mark_t:.2f}s" + (" (byte cap reached)"
                                                                 if meter.exhausted() else ""))
        raise SpeedtestError(f"{ep.where}: {direction} did not measure: {why}", meter.moved)
    return _Transfer((end_b - mark_b) * 8 / (end_t - mark_t) / 1e6, end_b - mark_b,
                     end_t - mark_t, streams - len(errors))


def run_speedtest(server: str, *, streams: int = 4, duration: float = 10.0,
                  warmup: float | None = None, byte_cap: int = 2**40,
                  timeout: float = 10.0, deadline_s: float | None = None,
                  clock: Callable[[], float] = time.monotonic) -> SpeedtestResult:
    """Latency, then download, then upload against one server, all within ``deadline_s``
    (default: what the phases need plus ``timeout``) and ``byte_cap`` bytes in all.

    Raises SpeedtestError (an OSError; ``moved`` = the bytes it cost) or ValueError.
    """
    ep = Endpoint.parse(server)
    warm = min(2.0, duration * 0.25) if warmup is None else warmup
    deadline = Deadline(deadline_s if deadline_s is not None else 2 * duration + 4 * timeout,
                        clock)
    meter = Meter(byte_cap)
    begun = clock()
    try:
        times = measure_latency(ep, timeout=timeout, meter=meter, deadline=deadline)
        down_meter = meter.share(meter.left() // 2)
        down = _transfer(ep, upload=False, streams=streams, duration=duration, warmup=warm,
                         meter=down_meter, deadline=deadline, timeout=timeout, clock=clock)
        up = _transfer(ep, upload=True, streams=streams, duration=duration, warmup=warm,
                       meter=meter, deadline=deadline, timeout=timeout, clock=clock)
    except SpeedtestError as exc:
        raise SpeedtestError(str(exc), meter.moved) from None
    except OSError as exc:  # connect refused, reset: named, with what it cost
        raise SpeedtestError(f"{ep.where}: {exc}", meter.moved) from None
    return SpeedtestResult(
        server=server, down_mbps=round(down.mbps, 3), up_mbps=round(up.mbps, 3),
        rtt_ms=round(statistics.median(times), 3), jitter_ms=round(jitter(times), 3),
        bytes=meter.moved, duration_s=round(clock() - begun, 3),
        down_bytes=down.window_bytes, up_bytes=up.window_bytes,
        down_s=round(down.window_s, 3), up_s=round(up.window_s, 3),
        streams_ok=min(down.streams_ok, up.streams_ok),
    )


def pick_server(servers: list[str], timeout: float = 3.0, *,
                deadline_s: float | None = None) -> str:
    """The server with the lowest median latency; raises OSError when none answers.

    Each server gets 5 round trips, at most 1 MiB and an equal share of ``deadline_s``.
    """
    best: tuple[float, str] | None = None
    errors = []
    share = (deadline_s if deadline_s is not None else 6 * timeout * len(servers)) / len(servers)
    for url in servers:
        try:
            rtt = statistics.median(measure_latency(Endpoint.parse(url), 5, timeout,
                                                    meter=Meter(MIB), deadline=Deadline(share)))
        except (OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        if best is None or rtt < best[0]:
            best = (rtt, url)
    if best is None:
        raise OSError("no speed-test server answered: " + "; ".join(errors))
    return best[1]
