"""Alert mail rendering: languages, encodings, local times, links, escaping."""

# The mails use Chinese full-width punctuation on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from collector.alerts.model import Alert, AlertKey
from collector.alerts.notifier import MailedAlert, Notification
from collector.alerts.render import MailRenderer, MailSettings
from collector.alerts.schooltime import Directory
from collector.inventory import Inventory

URUMQI = ZoneInfo("Asia/Urumqi")
START = int(dt.datetime(2026, 5, 12, 10, 5, tzinfo=URUMQI).timestamp() * 1000)


def directory() -> Directory:
    """A school in Urumqi time (UTC+6) whose name needs escaping in HTML."""
    return Directory(Inventory.model_validate({
        "districts": [{"id": "xj", "name": "天山区"}],
        "schools": [{"id": "xj-01", "name": "天山<一>小", "district": "xj", "category": "rural",
                     "classes": 6, "timetable": {"timezone": "Asia/Urumqi"}}],
    }))


def render(language: str, note: Notification, dashboard: str | None = "https://g.example/"
           ) -> EmailMessage:
    """Render and parse back, as a receiving client would."""
    renderer = MailRenderer(MailSettings("alerts@d.example", ["a@d.example", "b@d.example"],
                                         language, dashboard,
                                         "/d/schoolmon-school?var-school={school}"), directory())
    parsed = email.message_from_bytes(renderer(note), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def note(*alerts: tuple[Alert, int | None], muted: int = 0) -> Notification:
    """A notification of alerts (with end times for resolved ones)."""
    firing = [MailedAlert(a, a.since_ms, None, True) for a, end in alerts if end is None]
    resolved = [MailedAlert(a, a.since_ms, end, False) for a, end in alerts if end is not None]
    return Notification("xj-01", "xj", START + 60_000, firing, resolved, muted)


BANDWIDTH = Alert(AlertKey("bandwidth_low", "xj-01"), "warning", "xj", START,
                  {"category": "rural"},
                  {"down_mbps": 6.25, "target_mbps": 10.0, "tests_below": 3.0})
DEVICE = Alert(AlertKey("device_down", "xj-01", "proj-1"), "error", "xj", START,
               {"device": "proj-1", "classroom": "101", "device_type": "projector"},
               {"down_minutes": 12.0})
OFFLINE = Alert(AlertKey("agent_offline", "xj-01", "gw"), "critical", "xj", START,
                {"agent": "gw", "role": "gateway"},
                {"reason": "no_data", "last_data_ms": float(START - 600_000)})


def text(message: EmailMessage, subtype: str = "plain") -> str:
    """One body part."""
    part = message.get_body((subtype,))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_chinese_mail_headers_times_and_figures() -> None:
    """RFC 2047 UTF-8 subject, local (Urumqi) times, translated labels and values."""
    renderer = MailRenderer(MailSettings("alerts@d.example", ["a@d.example"], "zh-CN", None,
                                         "/x/{school}"), directory())
    raw = renderer(note((OFFLINE, None), (BANDWIDTH, None)))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # headers are pure ASCII on the wire
    assert "Subject: [schoolmon =?utf-8?b?" in head
    msg = render("zh-CN", note((OFFLINE, None), (BANDWIDTH, None)))
    assert msg["subject"] == "[schoolmon 告警] 天山<一>小（xj-01）：采集代理离线 等 1 项"
    assert msg["to"] == "a@d.example, b@d.example"
    assert msg["X-Schoolmon-School"] == "xj-01"
    body = text(msg)
    assert "学校：天山<一>小（xj-01），天山区" in body
    assert "[严重] 采集代理离线 - 代理 gw（新）" in body
    assert "开始于 2026-05-12 10:05 (Asia/Urumqi)" in body
    assert "原因: 上课时间内无数据" in body
    assert "最后收到数据: 2026-05-12 09:55 (Asia/Urumqi)" in body
    assert "角色: 网关" in body and "学校类别: 农村" in body
    assert "实测下行带宽 (Mbps): 6.2" in body and "目标 (Mbps): 10" in body
    assert "学校仪表盘：https://g.example/d/schoolmon-school?var-school=xj-01" in body


def test_english_resolved_mail_and_html_escaping() -> None:
    """A resolved-only mail says RESOLVED with the span; HTML escapes the school's name."""
    msg = render("en", note((DEVICE, START + 3_600_000)))
    assert msg["subject"] == "[schoolmon RESOLVED] 天山<一>小 (xj-01): Classroom device down"
    body = text(msg)
    assert "Resolved (1):" in body and "Firing" not in body
    assert "[error] Classroom device down - device proj-1, classroom 101" in body
    assert "2026-05-12 10:05 (Asia/Urumqi) to 2026-05-12 11:05 (Asia/Urumqi)" in body
    assert "device type: projector" in body
    html = text(msg, "html")
    assert "天山&lt;一&gt;小" in html and "<一>" not in html
    assert '<a href="https://g.example/d/schoolmon-school?var-school=xj-01">' in html


def test_muted_count_and_no_dashboard_link() -> None:
    """The muted line appears with its count; without dashboard_url no link line."""
    body = text(render("en", note((OFFLINE, None), muted=30), dashboard=None))
    assert "30 more alerts caused by this" in body
    assert "dashboard" not in body


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_alert_name_and_figure_has_words(language: str) -> None:
    """No alert renders with a missing title; known figure keys are translated."""
    from collector.alerts.settings import ALERT_NAMES
    from collector.alerts.texts import TEXTS

    texts = TEXTS[language]
    assert set(texts.titles) == set(ALERT_NAMES)
    assert set(texts.labels) == set(TEXTS["en"].labels)
