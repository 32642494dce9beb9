"""PJLink client (JBMIA PJLink Class 1 and Class 2): one status query over one TCP session.

Protocol, as the spec defines it: the projector greets with ``PJLINK 0`` (no authentication) or
``PJLINK 1 <random>``; with authentication the first command is prefixed with
``md5(random + password)`` as 32 lowercase hex digits.  Commands are ``%<class><CMD> ?`` and
answers ``%<class><CMD>=<value>``, each terminated by CR; ``ERR1`` (undefined command),
``ERR2`` (out of parameter), ``ERR3`` (unavailable time) and ``ERR4`` (projector failure) stand in
for a value, ``PJLINK ERRA`` means a wrong password.  Real projectors also pad with NUL bytes and
push ``%2LKUP=`` notifications before an answer; both are skipped.

:func:`query_projector` raises only :class:`PjlinkError` subclasses.  ``timeout`` bounds the whole
session (connect, greeting and every command), so a silent projector costs at most ``timeout``.
"""

from __future__ import annotations

import hashlib
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

PJLINK_PORT: Final = 4352
# The spec limits an answer to 136 bytes; allow more, but never an unbounded buffer.
MAX_LINE: Final = 1024
# Unsolicited notification lines tolerated before one answer (a chatty projector is not a hang).
MAX_SKIPPED_LINES: Final = 16
NOTIFICATIONS: Final = frozenset({"LKUP"})
ERROR_CODES: Final = frozenset({"ERR1", "ERR2", "ERR3", "ERR4"})
POWER: Final = {"0": "off", "1": "on", "2": "cooling", "3": "warming"}
ERROR_PARTS: Final = ("fan", "lamp", "temp", "cover", "filter", "other")
_GREETING: Final = re.compile(r"^PJLINK ([01])(?: (\S{1,64}))?$", re.IGNORECASE)
_NUMBER: Final = re.compile(r"^[0-9]{1,9}$")
_ANSWER: Final = re.compile(r"^%([0-9])([A-Za-z0-9]{4})=(.*)$", re.DOTALL)

Connect = Callable[[tuple[str, int], float], socket.socket]


class PjlinkError(Exception):
    """Base of every error :func:`query_projector` raises."""


class PjlinkAuthError(PjlinkError):
    """Wrong password (``PJLINK ERRA``), or the projector wants one and none is configured."""


class PjlinkTimeoutError(PjlinkError, TimeoutError):
    """No connection or no complete answer within the timeout."""


class PjlinkConnectionError(PjlinkError):
    """Connection refused or unreachable, or the projector closed the connection mid-session."""


class PjlinkProtocolError(PjlinkError):
    """An answer that is not PJLink: garbage, the wrong command, a malformed value."""


@dataclass(frozen=True)
class ProjectorStatus:
    """What one query learned; ``unavailable`` maps commands to the ERRn the projector gave."""

    power: str  # off, on, cooling, warming, unknown
    errors: dict[str, int]  # fan, lamp, temp, cover, filter, other -> 0 ok, 1 warning, 2 error
    lamp_hours: list[int]
    lamp_on: list[bool]
    input: str | None  # raw INPT code, e.g. "31" = DIGITAL 1
    av_mute: str | None  # off, video, audio, video+audio
    name: str | None
    manufacturer: str | None  # INF1
    model: str | None  # INF2
    pjlink_class: int
    serial: str | None = None  # class 2 SNUM
    software_version: str | None = None  # class 2 SVER
    filter_hours: int | None = None  # class 2 FILT
    unavailable: dict[str, str] = field(default_factory=dict)


def _default_connect(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


class _Session:
    """Line reader and command writer on one socket, under one deadline."""

    def __init__(self, sock: socket.socket, deadline: float, where: str) -> None:
        self.sock = sock
        self.deadline = deadline
        self.where = where
        self.buffer = b""
        self.prefix = ""  # the auth digest, sent with the first command only

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise PjlinkTimeoutError(f"{self.where}: no answer within the timeout")
        return left

    def read_line(self) -> str:
        """The next non-empty line, NUL padding removed, CR or LF terminated."""
        while True:
            match = re.search(rb"[\r\n]", self.buffer)
            if match:
                raw, self.buffer = self.buffer[: match.start()], self.buffer[match.end() :]
                line = raw.replace(b"\x00", b"").decode("utf-8", "replace").strip()
                if line:
                    return line
                continue
            if len(self.buffer) > MAX_LINE:
                raise PjlinkProtocolError(f"{self.where}: line longer than {MAX_LINE} bytes")
            self.sock.settimeout(self._remaining())
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise PjlinkTimeoutError(f"{self.where}: no answer within the timeout") from None
            except OSError as exc:
                raise PjlinkConnectionError(f"{self.where}: {exc.strerror or exc}") from None
            if not chunk:
                raise PjlinkConnectionError(f"{self.where}: projector closed the connection")
            self.buffer += chunk

    def ask(self, pj_class: int, command: str) -> str:
        """Send ``%<class><command> ?`` and return the value (or ERRn) of its answer."""
        data = f"{self.prefix}%{pj_class}{command} ?\r".encode("ascii")
        self.prefix = ""
        self.sock.settimeout(self._remaining())
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise PjlinkTimeoutError(f"{self.where}: send timed out") from None
        except OSError as exc:
            raise PjlinkConnectionError(f"{self.where}: {exc.strerror or exc}") from None
        for _ in range(MAX_SKIPPED_LINES):
            line = self.read_line()
            if line.upper() == "PJLINK ERRA":
                raise PjlinkAuthError(f"{self.where}: wrong password (PJLINK ERRA)")
            match = _ANSWER.match(line)
            if match is None:
                raise PjlinkProtocolError(f"{self.where}: not a PJLink answer: {line[:60]!r}")
            got = match.group(2).upper()
            if got in NOTIFICATIONS and got != command:
                continue  # unsolicited status notification (class 2), not our answer
            if got != command:
                raise PjlinkProtocolError(f"{self.where}: asked {command}, got {got}")
            value = match.group(3).strip()
            if value.upper() == "ERRA":
                raise PjlinkAuthError(f"{self.where}: wrong password ({command}=ERRA)")
            return value.upper() if value.upper() in ERROR_CODES else value
        raise PjlinkProtocolError(f"{self.where}: too many unsolicited lines")


def _greet(session: _Session, password: str | None) -> None:
    line = session.read_line()
    match = _GREETING.match(line)
    if match is None:
        raise PjlinkProtocolError(f"{session.where}: not a PJLink greeting: {line[:60]!r}")
    if match.group(1) == "0":
        return
    random = match.group(2)
    if random is None:
        raise PjlinkProtocolError(f"{session.where}: authentication greeting without random")
    if password is None:
        raise PjlinkAuthError(f"{session.where}: projector requires a password, none configured")
    session.prefix = hashlib.md5((random + password).encode("utf-8")).hexdigest()


def _int(value: str, what: str, where: str) -> int:
    if not _NUMBER.match(value):
        raise PjlinkProtocolError(f"{where}: {what} is not a number: {value[:40]!r}")
    return int(value)


def _errors(value: str, where: str) -> dict[str, int]:
    if len(value) != 6 or any(c not in "012" for c in value):
        raise PjlinkProtocolError(f"{where}: ERST is not 6 digits 0-2: {value[:40]!r}")
    return {part: int(c) for part, c in zip(ERROR_PARTS, value, strict=True)}


def _lamps(value: str, where: str) -> tuple[list[int], list[bool]]:
    parts = value.split()
    if not parts or len(parts) % 2 or any(p not in ("0", "1") for p in parts[1::2]):
        raise PjlinkProtocolError(f"{where}: LAMP is not hours/on pairs: {value[:40]!r}")
    hours = [_int(p, "lamp hours", where) for p in parts[0::2]]
    return hours, [p == "1" for p in parts[1::2]]


def _av_mute(value: str) -> str:
    # First digit: 1 video, 2 audio, 3 both; second: 1 muted, 0 not (class 2 adds 10/20).
    if len(value) == 2 and value[1] == "0" and value[0] in "123":
        return "off"
    return {"11": "video", "21": "audio", "31": "video+audio"}.get(value, value)


def query_projector(host: str, port: int, password: str | None, timeout: float,
                    *, connect: Connect = _default_connect) -> ProjectorStatus:
    """Query power, errors, lamps, input, mute, names and class (plus class 2 info) at once."""
    where = f"{host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        sock = connect((host, port), timeout)
    except TimeoutError:
        raise PjlinkTimeoutError(f"{where}: connect timed out") from None
    except OSError as exc:
        raise PjlinkConnectionError(f"{where}: {exc.strerror or exc}") from None
    with sock:
        session = _Session(sock, deadline, where)
        _greet(session, password)
        return _query(session)


def _query(s: _Session) -> ProjectorStatus:
    unavailable: dict[str, str] = {}

    def ask(pj_class: int, command: str) -> str | None:
        value = s.ask(pj_class, command)
        if value in ERROR_CODES:
            unavailable[command] = value
            return None
        return value

    power = ask(1, "POWR")  # first: carries the auth digest
    erst = ask(1, "ERST")
    lamp = ask(1, "LAMP")  # ERR1 here means "no lamp" (laser, LED)
    inpt = ask(1, "INPT")
    avmt = ask(1, "AVMT")
    name, inf1, inf2 = ask(1, "NAME"), ask(1, "INF1"), ask(1, "INF2")
    clss = ask(1, "CLSS")
    pj_class = _int(clss, "CLSS", s.where) if clss is not None else 1
    hours, lamp_on = _lamps(lamp, s.where) if lamp is not None else ([], [])
    status = ProjectorStatus(
        power=POWER.get(power or "", "unknown"),
        errors=_errors(erst, s.where) if erst is not None else {},
        lamp_hours=hours, lamp_on=lamp_on, input=inpt or None,
        av_mute=_av_mute(avmt) if avmt else None,
        name=name or None, manufacturer=inf1 or None, model=inf2 or None,
        pjlink_class=pj_class, unavailable=unavailable,
    )
    if pj_class < 2:
        return status
    serial, sver, filt = ask(2, "SNUM"), ask(2, "SVER"), ask(2, "FILT")
    return replace(status, serial=serial or None, software_version=sver or None,
                   filter_hours=_int(filt, "FILT", s.where) if filt is not None else None)
