"""The production transport of the ssh probe: netmiko, bounded by timeouts, errors reworded.

netmiko (and paramiko under it) is imported only when a device is first polled.  Its own
session log stays off (it would record everything the device prints), the SSH agent and
~/.ssh keys are not tried, and every failure becomes an :class:`SshError` whose text is written
here -- never the library's message, which may quote settings -- with the secrets masked in the
one place a library text is quoted.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.probes.base import ProbeError

if TYPE_CHECKING:
    from agent.probes.ssh import SshTarget

log = logging.getLogger(__name__)

MAX_COMMAND_CHARS = 8 * 2**20  # one command's answer (parsers refuse the same: model.py)


class SshError(ProbeError):
    """The device could not be reached, logged into, or stopped answering."""


class SshSession(Protocol):
    """An open CLI session on one device."""

    def run(self, command: str) -> str:
        """The command's output, without echo and prompt; SshError when it does not come."""
        ...

    def close(self) -> None:
        """End the session (never raises)."""
        ...


@dataclass(frozen=True)
class Timeouts:
    """How long each step may take, in seconds."""

    connect: float  # TCP connect, SSH banner, authentication: each
    command: float  # one command's complete output


def redact(text: str, secrets: list[str | None]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _secrets(target: SshTarget) -> list[str | None]:
    return [target.secret("password"), target.secret("passphrase"),
            target.secret("enable_secret")]


def _first_line(exc: BaseException, target: SshTarget) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact(lines[0] if lines else type(exc).__name__, _secrets(target))[:160]


def _is(exc: BaseException, class_name: str) -> bool:
    """Whether ``exc`` is a ``class_name`` (by name: paramiko ships no type stubs)."""
    return any(cls.__name__ == class_name for cls in type(exc).__mro__)


def _connect_error(exc: Exception, target: SshTarget, timeouts: Timeouts) -> str:
    """Our own words for why connecting failed."""
    cause = exc.__context__ if exc.__context__ is not None else exc
    if _is(cause, "PasswordRequiredException"):
        return f"key_file {target.key_file} is encrypted: set passphrase_env or passphrase_file"
    if _is(exc, "AuthenticationException"):  # netmiko's subclasses paramiko's
        how = f"key {target.key_file}" if target.key_file else "password"
        return f"authentication failed for user {target.username!r} ({how})"
    errors = getattr(cause, "errors", None)  # paramiko's NoValidConnectionsError: per address
    if _is(cause, "NoValidConnectionsError") and isinstance(errors, dict) and errors:
        cause = next(iter(errors.values()))
    where = f"{target.host}:{target.port}"
    if isinstance(cause, TimeoutError | socket.timeout):
        return f"no TCP answer from {where} within {timeouts.connect:g}s"
    if isinstance(cause, ConnectionRefusedError):
        return f"connection to {where} refused (no SSH server on that port?)"
    if isinstance(cause, socket.gaierror):
        return f"host name {target.host!r} does not resolve"
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot connect to {where}: {cause.strerror}"
    if _is(cause, "BadHostKeyException"):
        return f"host key of {where} does not match known_hosts_file {target.known_hosts_file}"
    text = str(cause)
    if "not found in known_hosts" in text:
        return f"host key of {where} is not in known_hosts_file {target.known_hosts_file}"
    # The banner timeout surfaces as either, depending on when paramiko's thread notices.
    if "banner" in text.lower() or "No existing session" in text:
        return f"no SSH answer from {where} within {timeouts.connect:g}s (not an SSH server?)"
    if isinstance(exc, ValueError) and "key_file" in text:
        return f"key_file {target.key_file} does not exist"
    if isinstance(exc, ValueError) and "enable" in text.lower():
        return "could not enter enable mode (set enable_secret_env or enable_secret_file)"
    if "prompt" in text.lower() or "Pattern not detected" in text or "Timed out" in text:
        return (f"logged in but no {target.device_type} CLI prompt within the timeout "
                "(wrong device_type?)")
    return f"SSH connection failed ({type(exc).__name__}): {_first_line(exc, target)}"


class NetmikoSession:
    """One netmiko connection."""

    def __init__(self, conn: Any, target: SshTarget, timeouts: Timeouts) -> None:
        self.conn = conn
        self.target = target
        self.timeouts = timeouts

    def run(self, command: str) -> str:
        """Send one command and read its output until the prompt returns."""
        from netmiko.exceptions import ReadTimeout

        try:
            output: str = self.conn.send_command(
                command, read_timeout=self.timeouts.command, strip_prompt=True,
                strip_command=True)
        except ReadTimeout:
            raise SshError(f"no complete answer to {command!r} within "
                           f"{self.timeouts.command:g}s") from None
        except Exception as exc:  # the session broke: EOF, socket, paramiko, netmiko errors
            raise SshError(f"session lost during {command!r} ({type(exc).__name__}): "
                           f"{_first_line(exc, self.target)}") from None
        # netmiko buffers until the prompt (bounded by read_timeout); past this cap the answer
        # is dropped here, before any parser sees it.
        if len(output) > MAX_COMMAND_CHARS:
            raise SshError(f"answer to {command!r} is {len(output)} characters, over the cap "
                           f"of {MAX_COMMAND_CHARS}")
        return output

    def close(self) -> None:
        """Log out; errors on the way out do not matter."""
        try:
            self.conn.disconnect()
        except Exception:  # already gone
            log.debug("disconnect from %s failed", self.target.name)


def _quiet_paramiko() -> None:
    """Paramiko logs every failed connection as an ERROR with a traceback, from its transport
    thread; the probe already logs one line per device.  Left alone if configured explicitly."""
    paramiko_log = logging.getLogger("paramiko")
    if paramiko_log.level == logging.NOTSET:
        paramiko_log.setLevel(logging.CRITICAL)


def connect_netmiko(target: SshTarget, timeouts: Timeouts) -> NetmikoSession:
    """Log into ``target``; SshError (in our words) when that fails."""
    from netmiko import ConnectHandler

    _quiet_paramiko()

    params: dict[str, Any] = {
        "device_type": target.device_type, "host": target.host, "port": target.port,
        "username": target.username, "password": target.secret("password"),
        "secret": target.secret("enable_secret") or "",
        "use_keys": target.key_file is not None, "key_file": target.key_file,
        "passphrase": target.secret("passphrase"),
        "allow_agent": False,  # only what the config says: no agent, no ~/.ssh keys
        "ssh_config_file": None, "system_host_keys": False,
        "ssh_strict": target.known_hosts_file is not None,
        "alt_host_keys": target.known_hosts_file is not None,
        "alt_key_file": target.known_hosts_file or "",
        "conn_timeout": timeouts.connect, "auth_timeout": timeouts.connect,
        "banner_timeout": timeouts.connect, "timeout": timeouts.command,
        "session_log": None,  # never record the session: it would hold everything typed
        "fast_cli": True,
    }
    try:
        conn = ConnectHandler(**params)
    except Exception as exc:  # netmiko, paramiko, socket and ValueError (bad key file, prompt)
        raise SshError(_connect_error(exc, target, timeouts)) from None
    return NetmikoSession(conn, target, timeouts)
