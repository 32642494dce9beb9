"""MailSender with an injected connection factory: failures logged once, password scrubbed."""

from __future__ import annotations

import logging
import smtplib

import pytest

from collector.alerts.settings import SmtpSettings
from collector.alerts.smtp import MailSender
from collector.alerts.state import OutboxItem

SECRET = "Very-Secret-99"


def settings() -> SmtpSettings:
    """SMTP settings whose password comes from the (given) environment."""
    return SmtpSettings.model_validate(
        {"host": "smtp.example", "port": 587, "username": "mon", "password_env": "PW"},
        context={"environ": {"PW": SECRET}})


def refusing() -> smtplib.SMTP:
    """A connection factory whose server answers with a text that quotes the password."""
    raise smtplib.SMTPResponseException(554, f"rejected: {SECRET}".encode())


def test_failure_is_logged_once_scrubbed_and_nothing_counts_as_sent(
        caplog: pytest.LogCaptureFixture) -> None:
    """Three failing sends: one error line, without the password; no id reported sent."""
    caplog.set_level(logging.DEBUG, logger="collector.alerts.smtp")
    sender = MailSender(settings(), "a@d.example", ["b@d.example"], refusing)
    items = [OutboxItem(1, "s1", 0, b"Subject: x\r\n\r\nbody\r\n", 0)]
    for _ in range(3):
        assert sender.send(items) == []
    assert sender.failures == 3 and sender.failing
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["alert mail not sent (1 waiting): SMTPResponseException: 554 rejected: "
                      "***; kept, retrying on every tick"]
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_nothing_to_send_opens_no_connection() -> None:
    """An empty outbox never calls the factory."""
    calls: list[int] = []

    def counting() -> smtplib.SMTP:
        calls.append(1)
        raise OSError("should not connect")

    assert MailSender(settings(), "a@d.example", ["b@d.example"], counting).send([]) == []
    assert calls == []


class _DropsAfterFirst:
    """A connection that accepts one mail, then loses the link (as a crash mid-session would)."""

    def __init__(self) -> None:
        self.accepted: list[bytes] = []

    def __enter__(self) -> _DropsAfterFirst:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def login(self, _user: str, _password: str) -> None:
        return None

    def sendmail(self, _from: str, _to: list[str], message: bytes) -> dict[str, object]:
        if self.accepted:
            raise smtplib.SMTPServerDisconnected("connection lost")
        self.accepted.append(message)
        return {}


def test_each_accepted_mail_is_reported_before_the_session_ends() -> None:
    """on_sent names a mail as soon as the server accepted it, not after the whole session."""
    conn = _DropsAfterFirst()
    sender = MailSender(settings(), "a@d.example", ["b@d.example"],
                        lambda: conn)  # type: ignore[arg-type, return-value]
    reported: list[int] = []
    items = [OutboxItem(i, f"s{i}", 0, b"Subject: x\r\n\r\nbody\r\n", 0) for i in (7, 8)]
    assert sender.send(items, on_sent=reported.append) == [7]
    assert reported == [7]
    assert len(conn.accepted) == 1
