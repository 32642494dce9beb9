"""A network device's SSH CLI, for the switches and routers that cannot run here.

A real SSH server (paramiko's server side) with password login and an interactive shell on a
pty that behaves like a vendor CLI as netmiko meets it: it prints a prompt (``<edge-sw>`` on
Huawei/H3C, ``r1#`` on Cisco/Ruijie), echoes what is typed, and answers each command line with
the recorded real output of that command, then the prompt again.  Commands it has no recording
for (netmiko's ``screen-length 0 temporary``, ``terminal length 0``...) answer with just the
prompt, as those do on the devices.  ``quit``/``exit`` end the session.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import TracebackType

import paramiko  # type: ignore[import-untyped]


class _Login(paramiko.ServerInterface):  # type: ignore[misc]
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.shell = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        ok = (username, password) == (self.username, self.password)
        return int(paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED)

    def check_channel_request(self, kind: str, chanid: int) -> int:
        ok = kind == "session"
        return int(paramiko.OPEN_SUCCEEDED if ok
                   else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def check_channel_pty_request(self, *args: object) -> bool:
        return True

    def check_channel_shell_request(self, channel: object) -> bool:
        self.shell.set()
        return True


class CliSshDevice:
    """Serves one recorded device on a loopback port until closed."""

    def __init__(self, host_key_file: Path, prompt: str, answers: dict[str, str],
                 username: str, password: str) -> None:
        self.host_key = paramiko.Ed25519Key.from_private_key_file(str(host_key_file))
        self.prompt, self.answers = prompt, answers
        self.username, self.password = username, password
        self.commands: list[str] = []  # every command line received, in order
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        login = _Login(self.username, self.password)
        try:
            transport.start_server(server=login)
            chan = transport.accept(20)
            if chan is None or not login.shell.wait(20):
                return
            self._cli(chan)
        except (EOFError, OSError, paramiko.SSHException):
            return
        finally:
            transport.close()

    def _cli(self, chan: paramiko.Channel) -> None:
        chan.sendall(f"\r\nInfo: The max number of VTY users is 5.\r\n{self.prompt}".encode())
        line, last = "", ""
        while True:
            data = chan.recv(4096)
            if not data:
                return
            for ch in data.decode(errors="replace"):
                if ch in "\r\n":
                    if ch == "\n" and last == "\r":
                        last = ch
                        continue
                    last = ch
                    command, line = line.strip(), ""
                    if command:
                        self.commands.append(command)
                    if command in ("quit", "exit", "logout"):
                        chan.sendall(b"\r\n")
                        chan.close()
                        return
                    answer = self.answers.get(command, "")
                    if answer:
                        answer = "\r\n".join(answer.splitlines()) + "\r\n"
                    chan.sendall(("\r\n" + answer + self.prompt).encode())
                else:
                    last = ch
                    line += ch
                    chan.sendall(ch.encode())  # a terminal echoes what is typed

    def close(self) -> None:
        """Stop accepting; sessions in progress end with their client."""
        self._stop = True
        self.sock.close()

    def __enter__(self) -> CliSshDevice:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
