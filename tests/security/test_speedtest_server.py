"""The speed-test server against a hostile LAN: half-sent heads, connection floods, large
heads, malformed requests and simultaneous tests, on a real socket."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from agent.speedtest.server import Limits, serve
from tests.conftest import wait_until
from tests.security.conftest import free_port

LIMITS = Limits(head_timeout=1.0, stall_timeout=2.0, max_connections=60,
                max_connections_per_client=20, max_tests=1, retry_after_s=7)
OTHER = "127.0.0.2"  # a second client address on the loopback network


@pytest.fixture
def port() -> Iterator[int]:
    """The server on its own event loop in a thread, with small limits."""
    chosen = free_port()
    loop = asyncio.new_event_loop()
    ready, stopped = threading.Event(), threading.Event()
    box: dict[str, asyncio.Event] = {}

    async def main() -> None:
        box["stop"] = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(serve("127.0.0.1", chosen, started, box["stop"], LIMITS))
        await started.wait()
        ready.set()
        await task

    def run() -> None:
        loop.run_until_complete(main())
        stopped.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert ready.wait(10)
    yield chosen
    loop.call_soon_threadsafe(box["stop"].set)
    thread.join(10)
    assert stopped.is_set()


def client(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection to the server from ``source``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock


def request(port: int, raw: bytes, source: str = "127.0.0.1") -> bytes:
    """Send raw bytes, return the answer's head (and what came with it)."""
    with client(port, source) as sock:
        sock.sendall(raw)
        return sock.recv(4096)


def closed_by_server(sock: socket.socket) -> bool:
    """The server ended the connection (EOF or reset)."""
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True


def test_half_sent_heads_are_closed_and_others_are_served(port: int) -> None:
    """20 connections holding half a head: the server still answers, and closes them all
    within the head timeout."""
    idle = [client(port) for _ in range(20)]
    for sock in idle:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x")
    assert b"200 OK" in request(port, b"GET /healthz HTTP/1.1\r\n\r\n", OTHER)
    start = time.monotonic()
    assert all(closed_by_server(sock) for sock in idle)
    assert time.monotonic() - start < 5
    for sock in idle:
        sock.close()


def test_connections_over_the_cap_get_429_with_retry_after(port: int) -> None:
    """The 21st connection of one address: 429 and Retry-After; another address is served."""
    held = [client(port) for _ in range(20)]
    try:
        answer = request(port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 429") and b"Retry-After: 7" in answer
        assert b"200 OK" in request(port, b"GET /healthz HTTP/1.1\r\n\r\n", OTHER)
    finally:
        for sock in held:
            sock.close()


def test_a_second_test_at_the_same_time_is_told_to_retry(port: int) -> None:
    """While one address downloads, another's download gets 429; after it, 200."""
    first = client(port)
    try:
        first.sendall(b"GET /backend/garbage.php?ckSize=1024 HTTP/1.1\r\n\r\n")
        assert first.recv(4096).startswith(b"HTTP/1.1 200")
        answer = request(port, b"GET /backend/garbage.php?ckSize=1 HTTP/1.1\r\n\r\n", OTHER)
        assert answer.startswith(b"HTTP/1.1 429") and b"Retry-After: 7" in answer
    finally:
        first.close()

    def second_served() -> bool:
        return request(port, b"GET /backend/garbage.php?ckSize=1 HTTP/1.1\r\n\r\n",
                       OTHER).startswith(b"HTTP/1.1 200")

    wait_until(second_served, 10, "the second test to be served")


def test_large_heads_and_malformed_requests_cost_one_log_line_per_cause(
        port: int, caplog: pytest.LogCaptureFixture) -> None:
    """A 64 KiB head is refused at 16 KiB (431); 300 malformed requests get 400 each; the log
    has one line per cause and no traceback."""
    caplog.set_level(logging.DEBUG)
    with client(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 64 * 1024)
        assert sock.recv(4096).startswith(b"HTTP/1.1 431")
    bad = [b"GARBAGE\r\n\r\n", b"GET http://[ HTTP/1.1\r\n\r\n", b"\x00\xff\r\n\r\n",
           b"POST /backend/empty.php HTTP/1.1\r\nContent-Length: x\r\n\r\n"]
    for i in range(300):
        assert request(port, bad[i % len(bad)]).startswith(b"HTTP/1.1 400")
    assert b"200 OK" in request(port, b"GET /healthz HTTP/1.1\r\n\r\n")
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in records if r.exc_info or "Traceback" in r.getMessage()]
    causes = [r.getMessage().split(" (")[0] for r in records
              if r.name == "agent.speedtest.server"]
    assert len(causes) == len(set(causes)) <= 3, causes
    assert not [r for r in records if r.name == "asyncio"]
