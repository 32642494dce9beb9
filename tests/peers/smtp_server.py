"""A real SMTP server for the alert tests: aiosmtpd on a free loopback port, with TLS
(STARTTLS or implicit) from a certificate made for the test, AUTH LOGIN/PLAIN, storing mail."""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.net import free_port

USER = "schoolmon"




def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (openssl CLI): (ca, cert, key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    d = directory
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=smtp-test-ca", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(d / "smtp.key"), "-out", str(d / "smtp.csr"))
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(d / "smtp.csr"), "-CA", str(d / "ca.crt"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
            "-extfile", str(d / "san.ext"), "-out", str(d / "smtp.crt"))
    return d / "ca.crt", d / "smtp.crt", d / "smtp.key"


@dataclass
class Received:
    """One accepted mail."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated_as: str | None
    tls: bool
    raw: bytes


@dataclass
class StoringHandler:
    """aiosmtpd handler keeping every message, parsed."""

    messages: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Store the message."""
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        # STARTTLS swaps the transport for a TLS one; implicit TLS has one from the start.
        tls = server.transport.get_extra_info("ssl_object") is not None
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), message, login, tls,
                            raw)
        with self.arrived:
            self.messages.append(received)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


class PasswordCheck:
    """AUTH LOGIN/PLAIN against one user; the accepted password can change (account fixed)."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.failures = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        """aiosmtpd authenticator."""
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
              and auth_data.password == self.password.encode())
        if not ok:
            self.failures += 1
        # handled=False: aiosmtpd then answers 535 itself (its default True means "I replied").
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@dataclass
class SmtpServer:
    """A running server and what it received."""

    port: int
    ca_file: Path
    mode: Literal["starttls", "tls"]
    handler: StoringHandler
    auth: PasswordCheck
    controller: Controller

    @property
    def messages(self) -> list[Received]:
        """Mails received so far."""
        with self.handler.arrived:
            return list(self.handler.messages)

    def stop(self) -> None:
        """Stop listening."""
        self.controller.stop()


def start_smtp(directory: Path, password: str,
               mode: Literal["starttls", "tls"] = "starttls") -> SmtpServer:
    """Start aiosmtpd; auth is required, and (STARTTLS mode) only accepted after STARTTLS."""
    ca, cert, key = make_certificate(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    handler, auth, port = StoringHandler(), PasswordCheck(password), free_port()
    if mode == "starttls":
        controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context,
                                require_starttls=True, auth_required=True,
                                auth_require_tls=True, authenticator=auth)
    else:
        # The whole connection is TLS, so AUTH needs no STARTTLS. aiosmtpd cannot tell and
        # warns (from its own thread) when auth_required goes without auth_require_tls, so
        # auth is not forced here: tests check ``authenticated_as`` of each mail instead.
        controller = Controller(handler, hostname="127.0.0.1", port=port,
                                ssl_context=context, auth_require_tls=False, authenticator=auth)
    controller.start()
    return SmtpServer(port, ca, mode, handler, auth, controller)
