"""Speed-test server speaking the LibreSpeed backend API over HTTP/1.1 (asyncio, keep-alive).

    GET  /backend/garbage.php?ckSize=N   N MiB of incompressible bytes (1 <= N <= 1024)
    POST /backend/empty.php              body read and discarded (at most MAX_UPLOAD_BYTES)
    GET  /backend/empty.php              empty answer at once (latency)
    GET  /backend/getIP.php              {"processedString": "<client ip>", "rawIspInfo": ""}
    GET  /healthz                        ok

Written on asyncio streams rather than http.server: one process serves many schools' tests at
once, a client that vanishes mid-stream only ends its own task, and large writes of one
pre-generated random block keep the per-byte cost near zero (several Gbit/s on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from urllib.parse import parse_qs, urlsplit

import orjson

log = logging.getLogger(__name__)

MIB = 1 << 20
MAX_CKSIZE = 1024  # MiB per garbage request
MAX_UPLOAD_BYTES = 1 << 30
# Also the StreamReader buffer: a small one would throttle uploads to a crawl.
MAX_HEADER_BYTES = 256 * 1024
# One random block written again and again: the bytes are incompressible, generating them per
# request would cost more CPU than sending them.
_BLOCK = os.urandom(MIB)
_COMMON = b"Cache-Control: no-store, no-cache\r\nAccess-Control-Allow-Origin: *\r\n"


class BadRequestError(Exception):
    """An answer 4xx: status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _response(status: int, reason: str, body: bytes = b"",
              content_type: bytes = b"text/plain", close: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Content-Type: " + content_type + b"\r\n" + _COMMON
            + (b"Connection: close\r\n" if close else b""))
    return head + b"\r\n" + body


def parse_cksize(query: str) -> int:
    """ckSize in MiB from a query string (default 4); raises BadRequestError."""
    values = parse_qs(query).get("ckSize", ["4"])
    try:
        size = int(values[0])
    except ValueError:
        raise BadRequestError(400, "ckSize must be an integer") from None
    if not 1 <= size <= MAX_CKSIZE:
        raise BadRequestError(400, f"ckSize must be 1..{MAX_CKSIZE}")
    return size


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]] | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection
    except asyncio.LimitOverrunError:
        raise BadRequestError(431, "headers too large") from None
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequestError(400, "bad request line")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    return parts[0], parts[1], headers


async def _send_garbage(writer: asyncio.StreamWriter, size_mib: int) -> None:
    writer.write(_response(200, "OK", content_type=b"application/octet-stream")
                 .replace(b"Content-Length: 0", f"Content-Length: {size_mib * MIB}".encode()))
    for _ in range(size_mib):
        writer.write(_BLOCK)
        await writer.drain()


async def _discard_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequestError(411, "send Content-Length")
    try:
        remaining = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequestError(400, "bad Content-Length") from None
    if not 0 <= remaining <= MAX_UPLOAD_BYTES:
        raise BadRequestError(413, f"body over {MAX_UPLOAD_BYTES} bytes")
    while remaining > 0:
        chunk = await reader.read(min(remaining, MIB))
        if not chunk:
            raise ConnectionResetError("client went away mid-upload")
        remaining -= len(chunk)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one connection (keep-alive) until the client closes it."""
    peer = writer.get_extra_info("peername")
    try:
        while True:
            try:
                head = await _read_head(reader)
                if head is None:
                    return
                method, target, headers = head
                url = urlsplit(target)
                await _route(method, url.path, url.query, headers, reader=reader,
                             writer=writer, peer=peer)
            except BadRequestError as exc:
                writer.write(_response(exc.status, exc.reason, exc.reason.encode(), close=True))
                await writer.drain()
                return
            if headers.get("connection", "").lower() == "close":
                return
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        return  # a client that vanishes costs only its own task
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _route(method: str, path: str, query: str, headers: dict[str, str], *,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 peer: tuple[str, int] | None) -> None:
    if path == "/backend/garbage.php" and method == "GET":
        await _send_garbage(writer, parse_cksize(query))
    elif path == "/backend/empty.php" and method in ("GET", "POST", "HEAD"):
        if method == "POST":
            await _discard_body(reader, headers)
        writer.write(_response(200, "OK"))
    elif path == "/backend/getIP.php" and method == "GET":
        body = orjson.dumps({"processedString": peer[0] if peer else "", "rawIspInfo": ""})
        writer.write(_response(200, "OK", body, b"application/json"))
    elif path == "/healthz" and method == "GET":
        writer.write(_response(200, "OK", b"ok\n"))
    elif method not in ("GET", "POST", "HEAD"):
        raise BadRequestError(405, "method not allowed")
    else:
        raise BadRequestError(404, "not found")
    await writer.drain()


async def serve(host: str, port: int, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Listen until ``stop`` is set (or forever)."""
    server = await asyncio.start_server(handle, host, port, limit=MAX_HEADER_BYTES,
                                        reuse_address=True)
    addrs = ", ".join(str(s.getsockname()) for s in server.sockets)
    log.info("speed-test server listening on %s", addrs)
    if ready is not None:
        ready.set()
    async with server:
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' -> (host, port); raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)
