"""Speed-test server speaking the LibreSpeed backend API over HTTP/1.1 (asyncio, keep-alive).

    GET  /backend/garbage.php?ckSize=N   N MiB of incompressible bytes (1 <= N <= 1024)
    POST /backend/empty.php              body read and discarded (at most MAX_UPLOAD_BYTES)
    GET  /backend/empty.php              empty answer at once (latency)
    GET  /backend/getIP.php              {"processedString": "<client ip>", "rawIspInfo": ""}
    OPTIONS (any path)                   CORS preflight, as LibreSpeed's backend answers it
    GET  /servers.json                   LibreSpeed server list naming this server (ecosystem.py)
    POST /results/telemetry.php          LibreSpeed telemetry: logged, appended to a JSON-lines file
    GET  /, /classroom                   the classroom browser test page (classroom.py)
    POST /results/classroom              its result, handed to the school agent's spool
    GET  /healthz                        ok

Written on asyncio streams rather than http.server: one process serves many schools' tests at
once, a client that vanishes mid-stream only ends its own task, and large writes of one
pre-generated random block keep the per-byte cost near zero (several Gbit/s on loopback).

It faces every device of the LAN, so nothing a client does is unbounded: a request head must
arrive within ``head_timeout`` and fit in ``MAX_HEADER_BYTES``, a body or a download that stalls
for ``stall_timeout`` ends; connections are capped in total and per client address, and so are
simultaneous tests (a test is the transfers of one client address; a second school testing at
the same time would read a share of the first one's bandwidth), answered 429 with Retry-After.
Each cause of trouble is logged at most once a minute, with a count, never with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from agent.speedtest.classroom import ClassroomResults, classroom_page
from agent.speedtest.ecosystem import (
    MAX_FORM_BYTES,
    PREFLIGHT_MAX_AGE_S,
    PerMinute,
    parse_form,
    server_base,
    server_list,
    telemetry_record,
)
from agent.speedtest.server_http import (
    BadRequestError,
    Reporter,
    parse_cksize,
    read_head,
    response,
)
from common.config import split_host_port

log = logging.getLogger(__name__)

MIB = 1 << 20
MAX_UPLOAD_BYTES = 1 << 30
RESULTS_PER_MINUTE = 30  # telemetry and classroom results stored, from all clients
# Also the StreamReader's buffer bound: a partial head never holds more than this (plus one
# socket read); bodies are drained as they come, so uploads stay fast.
MAX_HEADER_BYTES = 16 * 1024
# One random block written again and again: the bytes are incompressible, generating them per
# request would cost more CPU than sending them.
_BLOCK = os.urandom(MIB)


@dataclass(frozen=True)
class Limits:
    """What one client, and all of them, may hold."""

    head_timeout: float = 15.0  # for a whole request head, keep-alive wait included
    stall_timeout: float = 15.0  # a body read or a download write making no progress
    max_connections: int = 1024
    max_connections_per_client: int = 64
    max_tests: int = 2  # client addresses transferring at once
    max_streams_per_test: int = 32  # the client's maximum --streams
    retry_after_s: int = 10


class SpeedtestServer:
    """The connection handler, with the limits and the counts it enforces them with."""

    def __init__(self, limits: Limits | None = None, *, name: str = "schoolmon",
                 telemetry_path: str | None = None,
                 classroom: ClassroomResults | None = None) -> None:
        self.limits = limits or Limits()
        self.report = Reporter()
        self.connections: Counter[str] = Counter()
        self.transfers: Counter[str] = Counter()  # client address -> streams in progress
        self.name = name
        self.telemetry_path = telemetry_path
        self.telemetry_count = 0
        self.classroom = classroom
        # Telemetry and classroom results, together: a few schools' tests a minute at most.
        self.results_rate = PerMinute(RESULTS_PER_MINUTE)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection (keep-alive) until the client closes it or a limit ends it."""
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else "?"
        lim = self.limits
        self.connections[client] += 1
        try:
            if (sum(self.connections.values()) > lim.max_connections
                    or self.connections[client] > lim.max_connections_per_client):
                self.report.note("too many connections", client)
                raise BadRequestError(429, "too many connections", lim.retry_after_s)
            await self._serve(reader, writer, peer, client)
        except BadRequestError as exc:
            if exc.status != 429:
                self.report.note(f"bad request {exc.status}", f"{client}: {exc.reason}")
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                writer.write(response(exc.status, exc.reason, exc.reason.encode(), close=True,
                                       retry_after=exc.retry_after))
                async with asyncio.timeout(lim.stall_timeout):
                    await writer.drain()
        except TimeoutError:
            self.report.note("timeout", f"{client}: a head, body or download stalled")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that vanishes costs only its own task
        except Exception as exc:  # one line, never a traceback; the server goes on
            self.report.note("internal error", f"{client}: {type(exc).__name__}: {exc}")
        finally:
            self.connections[client] -= 1
            if self.connections[client] <= 0:
                del self.connections[client]
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: tuple[str, int] | None, client: str) -> None:
        while True:
            async with asyncio.timeout(self.limits.head_timeout):
                head = await read_head(reader)
            if head is None:
                return
            method, target, headers = head
            try:
                url = urlsplit(target)
            except ValueError:
                raise BadRequestError(400, "bad request target") from None
            await self._route(method, url.path, url.query, headers, reader=reader,
                              writer=writer, peer=peer, client=client)
            if method == "POST" and url.path.startswith("/results/"):
                await self._answer_result(url.path, headers, reader, writer, client)
            if headers.get("connection", "").lower() == "close":
                return

    @contextlib.contextmanager
    def _transfer(self, client: str) -> Iterator[None]:
        """Count a download or upload stream of ``client``; 429 when over the limits."""
        lim = self.limits
        testing = len(self.transfers) - (client in self.transfers)
        if testing >= lim.max_tests or self.transfers[client] >= lim.max_streams_per_test:
            self.report.note("busy", f"{client}: {testing} other tests in progress")
            raise BadRequestError(429, "another test is in progress", lim.retry_after_s)
        self.transfers[client] += 1
        try:
            yield
        finally:
            self.transfers[client] -= 1
            if self.transfers[client] <= 0:
                del self.transfers[client]

    async def _route(self, method: str, path: str, query: str, headers: dict[str, str], *,
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: tuple[str, int] | None, client: str) -> None:
        if path == "/backend/garbage.php" and method == "GET":
            size = parse_cksize(query)
            with self._transfer(client):
                await self._send_garbage(writer, size)
        elif path == "/backend/empty.php" and method in ("GET", "POST", "HEAD"):
            if method == "POST":
                with self._transfer(client):
                    await self._discard_body(reader, headers)
            writer.write(response(200, "OK"))
        elif path == "/backend/getIP.php" and method == "GET":
            body = orjson.dumps({"processedString": peer[0] if peer else "", "rawIspInfo": ""})
            writer.write(response(200, "OK", body, b"application/json"))
        elif path == "/healthz" and method == "GET":
            writer.write(response(200, "OK", b"ok\n"))
        elif method == "OPTIONS":  # CORS preflight of a cross-origin upload or telemetry
            writer.write(response(204, "No Content").replace(
                b"Content-Length: 0\r\n",
                f"Content-Length: 0\r\nAccess-Control-Max-Age: {PREFLIGHT_MAX_AGE_S}\r\n"
                .encode()))
        elif path in ("/servers.json", "/backend/servers.json") and method == "GET":
            base = server_base(headers.get("host"), writer.get_extra_info("sockname"))
            writer.write(response(200, "OK", server_list(base, self.name),
                                   b"application/json"))
        elif path in ("/", "/classroom", "/classroom.html") and method == "GET":
            writer.write(response(200, "OK", classroom_page(), b"text/html; charset=utf-8"))
        elif path.startswith("/results/") and method == "POST":
            return  # answered by _answer_result, which reads the body
        elif method not in ("GET", "POST", "HEAD"):
            raise BadRequestError(405, "method not allowed")
        else:
            raise BadRequestError(404, "not found")
        async with asyncio.timeout(self.limits.stall_timeout):
            await writer.drain()

    async def _answer_result(self, path: str, headers: dict[str, str],
                             reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             client: str) -> None:
        body = await self._read_small_body(reader, headers)
        if not self.results_rate.allow():
            self.report.note("results over the limit", f"{client}: {path}")
            raise BadRequestError(429, "too many results", self.limits.retry_after_s)
        if path == "/results/telemetry.php":
            form = parse_form(body, headers.get("content-type", ""))
            self.telemetry_count += 1
            record = telemetry_record(form, client, self.telemetry_count)
            log.info("telemetry %d from %s: dl=%s ul=%s ping=%s jitter=%s", record["id"],
                     client, record["dl"], record["ul"], record["ping"], record["jitter"])
            if self.telemetry_path:
                with open(self.telemetry_path, "ab") as f:
                    f.write(orjson.dumps(record) + b"\n")
            writer.write(response(200, "OK", f"id {record['id']}".encode()))
        elif path == "/results/classroom" and self.classroom is not None:
            try:
                stored = self.classroom.store(body, client, server_base(
                    headers.get("host"), writer.get_extra_info("sockname")))
            except ValueError as exc:
                raise BadRequestError(400, str(exc)[:200]) from None
            writer.write(response(200, "OK", orjson.dumps(stored), b"application/json"))
        elif path == "/results/classroom":
            raise BadRequestError(404, "this server keeps no classroom results "
                                       "(start it with --agent-config)")
        else:
            raise BadRequestError(404, "not found")
        async with asyncio.timeout(self.limits.stall_timeout):
            await writer.drain()

    async def _read_small_body(self, reader: asyncio.StreamReader,
                               headers: dict[str, str]) -> bytes:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequestError(400, "bad Content-Length") from None
        if not 0 <= length <= MAX_FORM_BYTES:
            raise BadRequestError(413, f"body over {MAX_FORM_BYTES} bytes")
        async with asyncio.timeout(self.limits.stall_timeout):
            return await reader.readexactly(length)

    async def _send_garbage(self, writer: asyncio.StreamWriter, size_mib: int) -> None:
        writer.write(response(200, "OK", content_type=b"application/octet-stream")
                     .replace(b"Content-Length: 0", f"Content-Length: {size_mib * MIB}".encode()))
        for _ in range(size_mib):
            writer.write(_BLOCK)
            async with asyncio.timeout(self.limits.stall_timeout):
                await writer.drain()

    async def _discard_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise BadRequestError(411, "send Content-Length")
        try:
            remaining = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequestError(400, "bad Content-Length") from None
        if not 0 <= remaining <= MAX_UPLOAD_BYTES:
            raise BadRequestError(413, f"body over {MAX_UPLOAD_BYTES} bytes")
        while remaining > 0:
            async with asyncio.timeout(self.limits.stall_timeout):
                chunk = await reader.read(min(remaining, MIB))
            if not chunk:
                raise ConnectionResetError("client went away mid-upload")
            remaining -= len(chunk)


async def serve(host: str, port: int, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None, limits: Limits | None = None, *,
                handler: SpeedtestServer | None = None) -> None:
    """Listen until ``stop`` is set (or forever)."""
    handler = handler or SpeedtestServer(limits)
    server = await asyncio.start_server(handler.handle, host, port, limit=MAX_HEADER_BYTES,
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
    try:
        host, port = split_host_port(value)
    except ValueError as exc:
        raise ValueError(f"--listen {exc}") from None
    if port is None:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT or [IPv6]:PORT")
    return host or "0.0.0.0", port
