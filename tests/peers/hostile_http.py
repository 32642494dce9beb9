"""Speed-test servers that misbehave, on loopback: what a student's laptop (or a broken PHP
backend) can answer an agent.

Modes:

- ``slow``: every GET is answered 200 with a Content-Length (4000 bytes for empty.php, 1 GB
  for garbage.php), then one byte every ``byte_every`` seconds (each byte restarts a per-socket
  timeout).
- ``silent``: accepts the connection, reads the request, never answers.
- ``chunked``: empty.php answers normally; garbage.php answers ``Transfer-Encoding: chunked``
  without a Content-Length (as some PHP backends do), chunks without end.
- ``endless``: empty.php answers normally, garbage.php claims 200 GB and sends as fast as it
  can; uploads are read and answered 200.
- ``huge_empty``: empty.php claims 200 GB and sends them.
- ``fail_upload``: a working download; every upload is answered 500 at its head and the
  connection closed.

``open_connections`` counts connections the client has not closed yet: a test that released its
sockets brings it back to 0.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

_BLOCK = b"\x5a" * 65536


class HostileHttp:
    """One misbehaving server on 127.0.0.1, serving each connection in a thread."""

    def __init__(self, mode: str, byte_every: float = 0.2) -> None:
        self.mode = mode
        self.byte_every = byte_every
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.open_connections = 0
        self.accepted = 0
        self.received = 0  # bytes of request bodies read from the client

    def __enter__(self) -> HostileHttp:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop.set()
        self.server.close()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.open_connections += 1
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                pending = b""
                while not self.stop.is_set():
                    while b"\r\n\r\n" not in pending:
                        got = conn.recv(65536)
                        if not got:
                            return  # the client closed: its socket is released
                        pending += got
                    head, _, pending = pending.partition(b"\r\n\r\n")
                    pending = self._answer(conn, head.decode("latin-1"), pending)
        except OSError:
            pass  # the client closed or reset mid-answer: released as well
        finally:
            with self.lock:
                self.open_connections -= 1

    def _body(self, conn: socket.socket, head: str, pending: bytes) -> bytes:
        """Read and discard a request body; what followed it."""
        length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                       if line.lower().startswith("content-length:")), 0)
        take = min(length, len(pending))
        pending, length = pending[take:], length - take
        with self.lock:
            self.received += take
        while length > 0:
            got = conn.recv(min(length, 65536))
            if not got:
                raise ConnectionError("closed")
            length -= len(got)
            with self.lock:
                self.received += len(got)
        return pending

    def _answer(self, conn: socket.socket, head: str, pending: bytes) -> bytes:
        method, path = [*head.split(" "), "", ""][:2]
        empty = "empty.php" in path
        if self.mode == "silent":
            while conn.recv(65536):  # until the client gives up
                pass
            raise ConnectionError("closed")
        if self.mode == "slow" or (self.mode == "huge_empty" and empty and method == "GET"):
            size = {"slow": 10**9 if not empty else 4000, "huge_empty": 200 * 10**9}[self.mode]
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
            self._endless(conn, slow=self.mode == "slow")
        if method == "POST" and self.mode == "fail_upload":
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            raise ConnectionError("refused the upload")
        if method == "POST":
            pending = self._body(conn, head, pending)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            return pending
        if empty:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            return pending
        if self.mode == "chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while not self.stop.is_set():
                conn.sendall(b"%x\r\n" % len(_BLOCK) + _BLOCK + b"\r\n")
        if self.mode in ("endless", "huge_empty"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200000000000\r\n\r\n")
            self._endless(conn, slow=False)
        size = int(path.split("ckSize=")[1]) * 2**20 if "ckSize=" in path else 0
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        while size > 0:
            size -= conn.send(_BLOCK[: min(size, len(_BLOCK))])
        return pending

    def _endless(self, conn: socket.socket, *, slow: bool) -> None:
        while not self.stop.is_set():
            if slow:
                conn.sendall(b"x")
                self.stop.wait(self.byte_every)  # the peer's pace, not a test's wait
            else:
                conn.sendall(_BLOCK)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        raise ConnectionError("stopped")
