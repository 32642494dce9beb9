"""Alert mails: subject, plain text and an HTML alternative, UTF-8 headers."""

from __future__ import annotations

import datetime as dt
import html
import re
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from collector.alerts.model import Figure
from collector.alerts.notifier import MailedAlert, Notification
from collector.alerts.schooltime import Directory, SchoolInfo
from collector.alerts.texts import TEXTS, Texts

_SUBJECT_LABELS = ("device", "agent", "classroom")
# What may never reach a header: controls (C0, C1 with U+0085) and line/paragraph separators.
_LINE_BREAKERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """The text as one header-safe line (names are checked at load; this is the second wall)."""
    return _LINE_BREAKERS.sub(" ", text).strip()


@dataclass(frozen=True)
class MailSettings:
    """Who mails whom, in which language, linking where."""

    sender: str
    recipients: list[str]
    language: str
    dashboard_url: str | None
    dashboard_path: str


@dataclass(frozen=True)
class _Item:
    """One alert as lines of text, shared by the plain and the HTML part."""

    heading: str
    when: str
    details: list[tuple[str, str]]


class MailRenderer:
    """Renders a Notification into the bytes the SMTP server gets."""

    def __init__(self, settings: MailSettings, directory: Directory) -> None:
        self.settings = settings
        self.directory = directory
        self.texts: Texts = TEXTS[settings.language]

    def __call__(self, note: Notification) -> bytes:
        """The whole message, ready for SMTP."""
        return self.compose(note).as_bytes(policy=SMTP)

    def dashboard_link(self, school_id: str) -> str | None:
        """The school's dashboard URL, when a dashboard_url is configured."""
        if not self.settings.dashboard_url:
            return None
        path = self.settings.dashboard_path.format(school=urllib.parse.quote(school_id, safe=""))
        return self.settings.dashboard_url.rstrip("/") + path

    def subject(self, note: Notification, school: SchoolInfo) -> str:
        """One line naming the school and the worst alert."""
        t = self.texts
        alerts = note.firing or note.resolved
        first = alerts[0].alert
        more = t.more.format(n=len(alerts) - 1) if len(alerts) > 1 else ""
        template = t.firing_subject if note.firing else t.resolved_subject
        return one_line(template.format(school=school.name, school_id=school.id,
                                        title=t.titles[first.name], more=more))

    def compose(self, note: Notification) -> EmailMessage:
        """The EmailMessage (text/plain with a text/html alternative)."""
        school = self.directory.school(note.school, note.district)
        msg = EmailMessage()
        msg["Subject"] = self.subject(note, school)
        msg["From"] = self.settings.sender
        msg["To"] = ", ".join(self.settings.recipients)
        msg["Date"] = format_datetime(dt.datetime.fromtimestamp(note.created_ms / 1000, dt.UTC))
        msg["Message-ID"] = make_msgid("schoolmon", self.settings.sender.rpartition("@")[2])
        msg["X-Schoolmon-School"] = school.id
        firing = [self._item(m, school) for m in note.firing]
        resolved = [self._item(m, school) for m in note.resolved]
        msg.set_content(self._text(note, school, firing, resolved), charset="utf-8")
        msg.add_alternative(self._html(note, school, firing, resolved), subtype="html",
                            charset="utf-8")
        return msg

    def _time(self, ts_ms: int, school: SchoolInfo) -> str:
        local = dt.datetime.fromtimestamp(ts_ms / 1000, school.zone)
        return f"{local:%Y-%m-%d %H:%M} ({school.zone.key})"

    def _value(self, name: str, value: Figure, school: SchoolInfo) -> str:
        if isinstance(value, str):
            return self.texts.values.get(value, value)
        if name.endswith("_ms"):
            return self._time(int(value), school)
        return str(int(value)) if float(value).is_integer() else f"{value:.1f}"

    def _item(self, mailed: MailedAlert, school: SchoolInfo) -> _Item:
        t = self.texts
        alert = mailed.alert
        title = t.titles[alert.name]
        if alert.name == "projector_error" and alert.severity == "warning":
            title += f" ({t.severities['warning']})"
        # A device is named with its room; the agent that checked it is no news to IT.
        shown = ("device", "classroom") if "device" in alert.labels else _SUBJECT_LABELS
        who = [f"{t.labels[k]} {alert.labels[k]}" for k in shown if alert.labels.get(k)]
        heading = f"[{t.severities[alert.severity]}] {title}"
        if who:
            heading += " - " + ", ".join(who)
        if mailed.new and mailed.ends_ms is None:
            heading += t.new_mark
        if mailed.ends_ms is None:
            when = t.since.format(time=self._time(mailed.starts_ms, school))
        else:
            when = t.span.format(start=self._time(mailed.starts_ms, school),
                                 end=self._time(mailed.ends_ms, school))
        details = [(t.labels.get(k, k), self.texts.values.get(v, v))
                   for k, v in alert.labels.items() if k in ("role", "device_type", "category")]
        details += [(t.labels.get(k, k), self._value(k, v, school))
                    for k, v in alert.figures.items()]
        return _Item(heading, when, details)

    def _text(self, note: Notification, school: SchoolInfo, firing: list[_Item],
              resolved: list[_Item]) -> str:
        t = self.texts
        lines = [t.school_line.format(school=school.name, school_id=school.id,
                                      district=school.district_name), ""]
        for head, items in ((t.firing_head, firing), (t.resolved_head, resolved)):
            if not items:
                continue
            lines.append(head.format(n=len(items)))
            for item in items:
                lines.append(f"  * {item.heading}")
                lines.append(f"      {item.when}")
                lines.extend(f"      {name}: {value}" for name, value in item.details)
            lines.append("")
        if note.muted:
            lines += [t.muted.format(n=note.muted), ""]
        if (link := self.dashboard_link(school.id)) is not None:
            lines += [t.dashboard.format(link=link), ""]
        lines.append(t.footer)
        return "\n".join(lines) + "\n"

    def _html(self, note: Notification, school: SchoolInfo, firing: list[_Item],
              resolved: list[_Item]) -> str:
        t = self.texts
        e = html.escape
        head_line = t.school_line.format(school=school.name, school_id=school.id,
                                         district=school.district_name)
        parts = [f"<html><body style=\"font-family: sans-serif\"><p><b>{e(head_line)}</b></p>"]
        for head, items, colour in ((t.firing_head, firing, "#b00020"),
                                    (t.resolved_head, resolved, "#1b5e20")):
            if not items:
                continue
            parts.append(f"<h3 style=\"color: {colour}\">{e(head.format(n=len(items)))}</h3>")
            for item in items:
                rows = "".join(f"<tr><td>{e(name)}</td><td>{e(value)}</td></tr>"
                               for name, value in item.details)
                parts.append(f"<p><b>{e(item.heading)}</b><br>{e(item.when)}</p>"
                             f"<table cellpadding=\"2\">{rows}</table>")
        if note.muted:
            parts.append(f"<p>{e(t.muted.format(n=note.muted))}</p>")
        if (link := self.dashboard_link(school.id)) is not None:
            anchor = f"<a href=\"{e(link)}\">{e(link)}</a>"
            parts.append(f"<p>{e(t.dashboard).replace('{link}', anchor)}</p>")
        parts.append(f"<p style=\"color: #666\">{e(t.footer)}</p></body></html>")
        return "\n".join(parts) + "\n"
