"""The HTTP pieces of the speed-test server: answers, request heads, errors, rate-limited logs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from agent.speedtest.ecosystem import CORS_HEADERS

log = logging.getLogger("agent.speedtest.server")

MAX_CKSIZE = 1024  # MiB per garbage request
_COMMON = b"Cache-Control: no-store, no-cache\r\n" + CORS_HEADERS
LOG_EVERY_S = 60.0


class BadRequestError(Exception):
    """An answer 4xx: status and reason."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def response(status: int, reason: str, body: bytes = b"",
              content_type: bytes = b"text/plain", *, close: bool = False,
              retry_after: int | None = None) -> bytes:
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Content-Type: " + content_type + b"\r\n" + _COMMON
            + (f"Retry-After: {retry_after}\r\n".encode() if retry_after else b"")
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


async def read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]] | None:
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


@dataclass
class Reporter:
    """One log line per cause per minute, saying how many happened since the last one."""

    counts: Counter[str] = field(default_factory=Counter)
    _logged: dict[str, float] = field(default_factory=dict)
    _since: Counter[str] = field(default_factory=Counter)

    def note(self, cause: str, detail: str) -> None:
        self.counts[cause] += 1
        self._since[cause] += 1
        now = time.monotonic()
        if now - self._logged.get(cause, -1e18) >= LOG_EVERY_S:
            self._logged[cause] = now
            log.warning("speed-test server: %s (%s); %d in the last minute", cause,
                        detail[:200], self._since.pop(cause))
