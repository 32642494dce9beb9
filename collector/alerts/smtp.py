"""Sending alert mails with smtplib: STARTTLS or implicit TLS, AUTH, retry without loss.

A mail leaves the outbox only when the server accepted it. A failure is logged once (not on
every retry), and never with the password: smtplib's own texts do not contain it, and any
text we log is scrubbed of it anyway.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable

from collector.alerts.settings import SmtpSettings
from collector.alerts.state import OutboxItem

log = logging.getLogger(__name__)

Connector = Callable[[], smtplib.SMTP]


def smtp_connector(settings: SmtpSettings, timeout: float) -> Connector:
    """Connections as the settings ask: implicit TLS, STARTTLS (verified against ca_file)."""

    def connect() -> smtplib.SMTP:
        context = ssl.create_default_context(cafile=settings.ca_file)
        if settings.tls:
            return smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout,
                                    context=context)
        conn = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
        if settings.starttls:
            try:
                conn.starttls(context=context)
            except BaseException:
                conn.close()
                raise
        return conn

    return connect


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class MailSender:
    """Delivers queued mails over one connection per tick."""

    def __init__(self, settings: SmtpSettings, sender: str, recipients: list[str],
                 connect: Connector) -> None:
        self.settings = settings
        self.sender = sender
        self.recipients = list(recipients)
        self.connect = connect
        self.failing = False
        self.failures = 0  # attempts that failed, ever (for tests and status)
        self._refused: set[int] = set()  # outbox ids whose content the server refused

    def _refused_once(self, item: OutboxItem, exc: BaseException) -> None:
        """Log a refused message once per outbox id (it is retried on every tick)."""
        self.failures += 1
        if item.id not in self._refused:
            self._refused.add(item.id)
            log.error("alert mail %d (school %s) refused: %s; kept, retrying on every tick",
                      item.id, item.school, self.describe(exc))

    def describe(self, exc: BaseException) -> str:
        """A one-line cause for the log, with the password scrubbed out."""
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            text = (f"authentication failed for user {self.settings.username!r} at "
                    f"{self.settings.host}:{self.settings.port}: {exc.smtp_code} "
                    f"{_text(exc.smtp_error)}")
        elif isinstance(exc, smtplib.SMTPResponseException):
            text = f"{type(exc).__name__}: {exc.smtp_code} {_text(exc.smtp_error)}"
        else:
            text = f"{self.settings.host}:{self.settings.port}: {type(exc).__name__}: {exc}"
        password = self.settings.secret("password")
        if password:
            text = text.replace(password, "***")
        return text

    def send(self, items: list[OutboxItem],
             on_sent: Callable[[int], None] | None = None) -> list[int]:
        """Send in order; the ids the server accepted (stops at the first failure).

        ``on_sent`` is called with each id as soon as the server accepted it, so the caller
        can record it durably before the next one: a crash later in the session (another
        mail, QUIT) then never sends an accepted mail again.
        """
        if not items:
            return []
        sent: list[int] = []
        try:
            with self.connect() as conn:
                if self.settings.username:
                    conn.login(self.settings.username, self.settings.secret("password") or "")
                for item in items:
                    try:
                        refused = conn.sendmail(self.sender, self.recipients, item.message)
                    except (smtplib.SMTPDataError, smtplib.SMTPNotSupportedError,
                            ValueError) as exc:
                        # This message only (the server refused its content): it stays in
                        # the outbox and is retried; the mails after it, other schools'
                        # among them, still go out.
                        self._refused_once(item, exc)
                        continue
                    if refused:
                        log.warning("alert mail: recipients refused: %s", sorted(refused))
                    self._refused.discard(item.id)
                    sent.append(item.id)
                    if on_sent is not None:
                        on_sent(item.id)
        except (smtplib.SMTPException, OSError) as exc:
            self.failures += 1
            if not self.failing:
                log.error("alert mail not sent (%d waiting): %s; kept, retrying on every tick",
                          len(items) - len(sent), self.describe(exc))
            else:
                log.debug("alert mail still not sent: %s", self.describe(exc))
            self.failing = True
            return sent
        if self.failing:
            log.info("alert mail works again: %d waiting mails sent", len(sent))
            self.failing = False
        return sent
