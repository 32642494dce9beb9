"""A PJLink projector on a loopback TCP port, faithful to the JBMIA spec (Class 1 and 2).

No real projector can run here, so this is the peer the PJLink client is tested against.  It
speaks the protocol as the spec defines it (greeting ``PJLINK 0`` / ``PJLINK 1 <random>``, the
MD5 digest of random + password checked on the first command, ``%<class><CMD>=<value>`` answers
terminated by CR, ERR1..ERR4, ``PJLINK ERRA``, closing after 30 s idle), and it can misbehave the
ways real ones do: ERR codes per command, unsolicited ``%2LKUP=`` lines, NUL padding, closing
mid-answer, going silent, answering garbage.  It counts connections and records commands.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

IDLE_CLOSE_S = 30.0  # the spec: the projector closes a connection idle for 30 s


@dataclass
class ProjectorState:
    """What the projector reports."""

    power: str = "1"  # 0 standby, 1 on, 2 cooling, 3 warm-up
    errors: str = "000000"  # fan, lamp, temperature, cover, filter, other
    lamps: list[tuple[int, bool]] = field(default_factory=lambda: [(1500, True)])
    input: str = "31"
    av_mute: str = "30"
    name: str = "proj-301"
    manufacturer: str = "EPSON"
    model: str = "EB-2250U"
    pjlink_class: int = 1
    serial: str = "X5N1234567"
    software_version: str = "1.02"
    filter_hours: int = 320


@dataclass
class Faults:
    """How the projector misbehaves; commands are four letters, e.g. "LAMP"."""

    errors: dict[str, str] = field(default_factory=dict)  # command -> ERR1..ERR4 or ERRA
    lkup_before: set[str] = field(default_factory=set)  # %2LKUP= line before these answers
    nul_padding: bool = False  # NULs before and after every line
    close_mid_answer: str | None = None  # send half of this answer, then close
    silent: bool = False  # accept, then never send a byte
    silent_on: str | None = None  # greet and answer until this command, then go silent
    garbage: dict[str, bytes] = field(default_factory=dict)  # command -> raw bytes instead
    greeting: bytes | None = None  # raw greeting instead of the protocol's
    delay_s: float = 0.0  # wait this long before every answer (a slow projector)


class PjlinkServer:
    """The projector, listening on 127.0.0.1 until :meth:`close`."""

    def __init__(self, state: ProjectorState | None = None, password: str | None = None,
                 faults: Faults | None = None) -> None:
        self.state = state or ProjectorState()
        self.password = password
        self.faults = faults or Faults()
        self.connections = 0
        self.commands: list[str] = []  # e.g. "%1POWR ?" as received (digest removed)
        self.auth_failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        peer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                peer._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening and release silent connections."""
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    # --- one connection -------------------------------------------------------------------

    def _send(self, conn: socket.socket, line: str | bytes) -> None:
        data = line.encode("utf-8") + b"\r" if isinstance(line, str) else line
        if self.faults.nul_padding:
            data = b"\x00\x00" + data + b"\x00" * 5
        conn.sendall(data)

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        if self.faults.silent:
            self._stop.wait(IDLE_CLOSE_S)
            return
        random = secrets.token_hex(4)
        if self.faults.greeting is not None:
            self._send(conn, self.faults.greeting)
        elif self.password is None:
            self._send(conn, "PJLINK 0")
        else:
            self._send(conn, f"PJLINK 1 {random}")
        conn.settimeout(IDLE_CLOSE_S)
        buffer, first = b"", True
        while not self._stop.is_set():
            while b"\r" not in buffer:
                try:
                    chunk = conn.recv(1024)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
            raw, buffer = buffer.split(b"\r", 1)
            line = raw.decode("utf-8", "replace")
            if first and self.password is not None:
                expected = hashlib.md5((random + self.password).encode()).hexdigest()
                if line[:32] != expected:
                    with self._lock:
                        self.auth_failures += 1
                    self._send(conn, "PJLINK ERRA")
                    return
                line = line[32:]
            first = False
            with self._lock:
                self.commands.append(line)
            if not self._answer(conn, line):
                return

    def _answer(self, conn: socket.socket, line: str) -> bool:
        """Answer one command line; False when the connection is to end."""
        if len(line) < 7 or line[0] != "%" or line[1] not in "12":
            self._send(conn, "%1" + line[2:6] + "=ERR1")
            return True
        pj_class, command, param = line[1], line[2:6].upper(), line[7:]
        f = self.faults
        if f.silent_on == command:
            self._stop.wait(IDLE_CLOSE_S)
            return False
        if f.delay_s:
            self._stop.wait(f.delay_s)
        if command in f.lkup_before:
            self._send(conn, "%2LKUP=00:11:22:33:44:55")
        if command in f.garbage:
            self._send(conn, f.garbage[command])
            return True
        answer = f"%{pj_class}{command}={self._value(pj_class, command, param)}"
        if f.close_mid_answer == command:
            conn.sendall(answer.encode()[: len(answer) // 2])
            return False
        if f.errors.get(command) == "ERRA":
            self._send(conn, "PJLINK ERRA")
            return False
        self._send(conn, answer)
        return True

    def _value(self, pj_class: str, command: str, param: str) -> str:
        s, f = self.state, self.faults
        if command in f.errors:
            return f.errors[command]
        queries: dict[str, Any] = {
            "POWR": s.power, "ERST": s.errors, "INPT": s.input, "AVMT": s.av_mute,
            "NAME": s.name, "INF1": s.manufacturer, "INF2": s.model, "INFO": "",
            "CLSS": str(s.pjlink_class),
            "LAMP": " ".join(f"{h} {int(on)}" for h, on in s.lamps) if s.lamps else "ERR1",
        }
        class2 = {"SNUM": s.serial, "SVER": s.software_version, "FILT": str(s.filter_hours)}
        if pj_class == "2":
            if s.pjlink_class < 2:
                return "ERR1"
            queries |= class2
        if command == "POWR" and param in ("0", "1"):
            s.power = param
            return "OK"
        if command not in queries:
            return "ERR1"
        if param != "?":
            return "ERR2"
        return str(queries[command])


@contextmanager
def pjlink_server(state: ProjectorState | None = None, password: str | None = None,
                  faults: Faults | None = None) -> Iterator[PjlinkServer]:
    """A running projector, closed afterwards."""
    server = PjlinkServer(state, password, faults)
    try:
        yield server
    finally:
        server.close()
