"""Alert mails through a real SMTP server (aiosmtpd, STARTTLS or implicit TLS, AUTH)."""

# The mails use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import logging
from email.message import EmailMessage
from pathlib import Path

import pytest

from collector.alerts.engine import AlertEngine
from collector.alerts.settings import AlertRulesSettings
from tests.integration.alert_scenario import (
    DEVICES,
    PASSWORD,
    SCHOOL,
    SCHOOL_NAME,
    T0,
    FakeClock,
    alert_settings,
    engine,
    observe,
)
from tests.peers.smtp_server import USER, SmtpServer, make_certificate, start_smtp

pytestmark = pytest.mark.integration


def body(message: EmailMessage, subtype: str = "plain") -> str:
    """The text of one part of a received mail."""
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def storm(eng: AlertEngine, clock: FakeClock, start: float, end: float, step: float = 60.0,
          *, up: bool = False, online: bool = False) -> None:
    """The gateway reports every ``step`` seconds; the engine ticks after each report."""
    t = start
    while t <= end:
        observe(eng, clock, t, up=up, online=online)
        eng.tick(t)
        t += step


def test_storm_of_30_devices_with_uplink_down_gives_one_mail(tmp_path: Path,
                                                             smtp: SmtpServer) -> None:
    """The uplink and 30 panels go dark together for an hour: one mail, about the uplink."""
    clock = FakeClock(T0)
    eng = engine(alert_settings(tmp_path / "alerts.db", smtp), clock)
    storm(eng, clock, T0, T0 + 3600)

    assert len(smtp.messages) == 1, [m.message["subject"] for m in smtp.messages]
    mail = smtp.messages[0]
    assert mail.tls and mail.authenticated_as == USER
    assert mail.rcpt_tos == ["it@district.example"]
    subject = mail.message["subject"]
    assert SCHOOL_NAME in subject and SCHOOL in subject and "学校互联网中断" in subject
    text = body(mail.message)
    assert "panel-" not in text
    assert "不可达目标: district-hub, internet" in text
    # The panels do fire (after their 10 min grace), muted by the uplink.
    names = sorted(r.alert.name for r in eng.notifier.records())
    assert names == ["device_down"] * 30 + ["internet_down"]


def test_panels_alone_fire_after_their_grace(tmp_path: Path, smtp: SmtpServer) -> None:
    """Without the uplink cause the same 30 panels are one mail listing all of them."""
    clock = FakeClock(T0)
    eng = engine(alert_settings(tmp_path / "alerts.db", smtp), clock)
    storm(eng, clock, T0, T0 + 1200, up=True)
    assert len(smtp.messages) == 1
    text = body(smtp.messages[0].message)
    assert all(d in text for d in DEVICES)
    assert "多媒体设备离线" in smtp.messages[0].message["subject"]
    assert "等 29 项" in smtp.messages[0].message["subject"]


def test_restart_in_the_middle_sends_no_duplicate_and_still_resolves(
        tmp_path: Path, smtp: SmtpServer) -> None:
    """A new engine on the same state file: nothing mailed twice; the resolved mail comes."""
    state = tmp_path / "alerts.db"
    clock = FakeClock(T0)
    first = engine(alert_settings(state, smtp), clock)
    storm(first, clock, T0, T0 + 600)
    assert len(smtp.messages) == 1
    first.close()

    second = engine(alert_settings(state, smtp), clock)
    # Before any sample arrives the new engine knows nothing: it must not resolve or repeat.
    for t in (T0 + 630, T0 + 660, T0 + 690):
        second.tick(t)
    assert len(smtp.messages) == 1
    storm(second, clock, T0 + 720, T0 + 3600)
    assert len(smtp.messages) == 1

    storm(second, clock, T0 + 3660, T0 + 4800, up=True, online=True)
    assert len(smtp.messages) == 2
    resolved = smtp.messages[1].message
    assert "已恢复" in resolved["subject"] and SCHOOL_NAME in resolved["subject"]


def test_recovery_gives_exactly_one_resolved_mail(tmp_path: Path, smtp: SmtpServer) -> None:
    """Uplink and panels back: one resolved mail, naming the uplink, not the muted panels."""
    clock = FakeClock(T0)
    eng = engine(alert_settings(tmp_path / "alerts.db", smtp), clock)
    storm(eng, clock, T0, T0 + 1800)
    assert len(smtp.messages) == 1
    storm(eng, clock, T0 + 1860, T0 + 9000, up=True, online=True)

    assert len(smtp.messages) == 2, [m.message["subject"] for m in smtp.messages]
    resolved = smtp.messages[1].message
    assert resolved["subject"].startswith("[schoolmon 已恢复]")
    text = body(resolved)
    assert "已恢复（1 项）" in text and "学校互联网中断" in text
    assert "2026-05-12 09:00 (Asia/Shanghai) 至 2026-05-12 09:31 (Asia/Shanghai)" in text
    assert "panel-" not in text
    assert eng.notifier.records() == []


def test_repeat_interval_resends_once_after_it_passes(tmp_path: Path, smtp: SmtpServer) -> None:
    """Still firing: the same mail again after repeat_interval (4 h), not before, once."""
    clock = FakeClock(T0)
    eng = engine(alert_settings(tmp_path / "alerts.db", smtp), clock)
    storm(eng, clock, T0, T0 + 60)
    assert len(smtp.messages) == 1
    first_sent = T0 + 60  # group_wait 30 s, ticks every 60 s
    storm(eng, clock, T0 + 120, first_sent + 4 * 3600 - 60, step=600)
    assert len(smtp.messages) == 1
    storm(eng, clock, first_sent + 4 * 3600, first_sent + 4 * 3600 + 3 * 3600, step=600)

    assert len(smtp.messages) == 2
    repeat = smtp.messages[1].message
    assert repeat["subject"] == smtp.messages[0].message["subject"]
    text = body(repeat)
    assert "（新）" not in text  # a repeat marks nothing as new
    assert "另有 30 项由此引起的告警" in text  # the panels went down meanwhile, muted


def test_quiet_hours_hold_mails_until_they_end(tmp_path: Path, smtp: SmtpServer) -> None:
    """22:00-07:00: an uplink that dies at 21:59:50 and comes back at 02:00 is told at 07:00."""
    evening = T0 + 13 * 3600 - 10  # 21:59:50
    clock = FakeClock(evening)
    rules = AlertRulesSettings(quiet_hours="22:00-07:00")
    eng = engine(alert_settings(tmp_path / "alerts.db", smtp), clock, rules)
    storm(eng, clock, evening, evening + 4 * 3600, step=300, online=True)
    assert smtp.messages == []
    two_am = evening + 4 * 3600 + 10
    storm(eng, clock, two_am, two_am + 5 * 3600 - 60, step=300, up=True, online=True)
    assert smtp.messages == []  # 06:59: still quiet

    storm(eng, clock, two_am + 5 * 3600, two_am + 6 * 3600, step=300, up=True, online=True)
    assert len(smtp.messages) == 1
    held = smtp.messages[0].message
    assert "已恢复" in held["subject"] and "学校互联网中断" in held["subject"]
    assert "2026-05-12 21:59 (Asia/Shanghai) 至 2026-05-13 02:00 (Asia/Shanghai)" in body(held)


def test_subject_encoding_in_chinese_and_the_english_template(tmp_path: Path,
                                                             smtp: SmtpServer) -> None:
    """zh-CN subject is RFC 2047 UTF-8 and decodes to the school's name; en reads as English."""
    for language in ("zh-CN", "en"):
        clock = FakeClock(T0)
        eng = engine(alert_settings(tmp_path / f"{language}.db", smtp, language=language),
                     clock)
        storm(eng, clock, T0, T0 + 60)
        eng.close()
    zh, en = (m.message for m in smtp.messages)

    raw_head = smtp.messages[0].raw.split(b"\r\n\r\n", 1)[0]
    raw_head.decode("ascii")  # 7-bit headers: Chinese only inside RFC 2047 encoded words
    assert b"Subject: [schoolmon =?utf-8?b?" in raw_head
    assert zh["subject"] == f"[schoolmon 告警] {SCHOOL_NAME}（{SCHOOL}）：学校互联网中断"
    assert en["subject"] == f"[schoolmon FIRING] {SCHOOL_NAME} ({SCHOOL}): School internet down"
    text = body(en)
    assert f"School: {SCHOOL_NAME} ({SCHOOL}), 天河区" in text
    assert "[critical] School internet down (new)" in text
    assert "since 2026-05-12 09:00 (Asia/Shanghai)" in text
    assert "unreachable targets: district-hub, internet" in text
    assert f"School dashboard: http://grafana.example/d/schoolmon-school?var-school={SCHOOL}" \
        in text
    html = body(en, "html")
    assert f'<a href="http://grafana.example/d/schoolmon-school?var-school={SCHOOL}">' in html
    assert "学校仪表盘" in body(zh) and "学校互联网中断" in body(zh, "html")


def test_wrong_password_logged_once_without_it_and_sent_when_fixed(
        tmp_path: Path, smtp: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    """Auth refused: one error line, no password; the mail waits and goes out once fixed."""
    caplog.set_level(logging.DEBUG)
    wrong = "Wrong-Pass-0815"
    clock = FakeClock(T0)
    eng = engine(alert_settings(tmp_path / "alerts.db", smtp, password=wrong), clock)
    storm(eng, clock, T0, T0 + 600)
    assert smtp.messages == []
    assert smtp.auth.failures >= 5  # retried on every tick
    assert eng.pending_mails() == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "authentication failed for user 'schoolmon'" in errors[0].getMessage()
    assert "535" in errors[0].getMessage()

    smtp.auth.password = wrong  # the mail account now takes what we have
    storm(eng, clock, T0 + 660, T0 + 720)

    assert len(smtp.messages) == 1
    assert "学校互联网中断" in smtp.messages[0].message["subject"]
    assert eng.pending_mails() == 0
    assert any("works again" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert wrong not in record.getMessage() and PASSWORD not in record.getMessage()


def test_outbox_survives_a_restart_while_smtp_is_down(tmp_path: Path) -> None:
    """Mail queued while the server is unreachable is sent by the next collector process."""
    state = tmp_path / "alerts.db"
    (tmp_path / "smtp").mkdir()
    server = start_smtp(tmp_path / "smtp", PASSWORD)
    server.stop()  # the port and the CA stay known: the server is just down
    clock = FakeClock(T0)
    first = engine(alert_settings(state, server), clock)
    storm(first, clock, T0, T0 + 300)
    assert first.pending_mails() == 1
    first.close()

    (tmp_path / "smtp2").mkdir()
    server = start_smtp(tmp_path / "smtp2", PASSWORD)
    try:
        second = engine(alert_settings(state, server), clock)
        second.tick(T0 + 360)
        assert len(server.messages) == 1
        assert "学校互联网中断" in server.messages[0].message["subject"]
        assert second.pending_mails() == 0
    finally:
        server.stop()


def test_implicit_tls(tmp_path: Path) -> None:
    """smtp.tls: true (port 465 style): TLS from the first byte, then AUTH."""
    server = start_smtp(tmp_path, PASSWORD, mode="tls")
    try:
        clock = FakeClock(T0)
        eng = engine(alert_settings(tmp_path / "alerts.db", server), clock)
        storm(eng, clock, T0, T0 + 60)
        assert len(server.messages) == 1
        mail = server.messages[0]
        assert mail.tls and mail.authenticated_as == USER
        assert SCHOOL_NAME in mail.message["subject"]
    finally:
        server.stop()


def test_starttls_verifies_the_server_against_ca_file(tmp_path: Path, smtp: SmtpServer,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A server certificate from another CA is refused before the password is sent."""
    (tmp_path / "other").mkdir()
    other_ca, _, _ = make_certificate(tmp_path / "other")
    settings = alert_settings(tmp_path / "alerts.db", smtp)
    smtp_settings = settings.smtp.model_copy(update={"ca_file": str(other_ca)})
    settings = settings.model_copy(update={"smtp": smtp_settings})
    clock = FakeClock(T0)
    eng = engine(settings, clock)
    storm(eng, clock, T0, T0 + 120)
    assert smtp.messages == []
    assert smtp.auth.failures == 0  # never got as far as AUTH
    assert any("CERTIFICATE_VERIFY_FAILED" in r.getMessage() for r in caplog.records)
