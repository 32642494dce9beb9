"""Hostile names: refused at load, never a header, never a formula; a mail that cannot be made
stays unsent for its own school only."""

from __future__ import annotations

import csv
import dataclasses
import io
import smtplib
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from collector.alerts.inhibit import Inhibitor
from collector.alerts.model import Alert, AlertKey, Evaluation
from collector.alerts.notifier import Notification, Notifier, Timing
from collector.alerts.settings import SmtpSettings
from collector.alerts.smtp import MailSender
from collector.alerts.state import AlertStore, OutboxItem
from collector.inventory import load_inventory
from collector.reports.csvout import render_csv
from common.config import ConfigError
from common.wire import Topics, WireError, decode_envelope
from tests.security.conftest import free_port
from tests.unit.test_report import report_data

T0 = 1_780_000_000_000
TIMING = Timing(group_wait_ms=0, group_interval_ms=60_000, repeat_interval_ms=3_600_000,
                resolve_timeout_ms=86_400_000, send_resolved=True)


def inventory_with(tmp_path: Path, name: str) -> Path:
    """An inventory whose only school has this name."""
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({
        "districts": [{"id": "d1", "name": "D1"}],
        "schools": [{"id": "s1", "name": name, "district": "d1", "category": "urban",
                     "classes": 3}]}))  # escaped: YAML itself folds a raw U+0085
    return path


@pytest.mark.parametrize("name", ["一中\nBcc: x@evil.example", "一中\r", "一中\u2028Bcc: x",
                                  "一中\u0085", "\u202eloohcs", "a\x00b", "  "])
def test_inventory_refuses_names_that_are_not_one_line_of_text(tmp_path: Path,
                                                               name: str) -> None:
    """Control, C1 (U+0085), line-separator and bidi characters: a load error naming the key."""
    with pytest.raises(ConfigError, match=r"schools\.0\.name"):
        load_inventory(inventory_with(tmp_path, name), environ={})
    assert load_inventory(inventory_with(tmp_path, "第一中学 (No. 1)"), environ={}).schools


@pytest.mark.parametrize("bad", ["s1\n", "s1\r\n"])
def test_ids_with_a_trailing_line_break_are_refused_on_the_wire(bad: str) -> None:
    """Python's "$" matches before a final newline: the wire checks with fullmatch."""
    with pytest.raises(WireError, match="topic"):
        Topics("schoolmon/v1").parse(f"schoolmon/v1/d1/{bad}/a1/data")
    payload = orjson.dumps({"v": 1, "district": "d1", "school": bad, "agent": "a1", "seq": 1,
                            "sent_ms": 1, "samples": []})
    with pytest.raises(WireError, match="schema"):
        decode_envelope(payload)


def test_a_mail_that_cannot_be_made_stays_unsent_and_other_schools_get_theirs(
        tmp_path: Path) -> None:
    """The renderer fails for one school: the other's mail is queued; the failing school's
    alert is not marked sent and is mailed on the first tick after the renderer works."""
    broken = {"s-bad"}

    def render(note: Notification) -> bytes:
        if note.school in broken:  # what the email library does with a header line break
            raise ValueError("Header values may not contain linefeed or carriage return")
        return f"mail for {note.school}".encode()

    store = AlertStore(tmp_path / "alerts.db")
    notifier = Notifier(store, TIMING, Inhibitor([]), render)
    alerts = [Alert(AlertKey("internet_down", school, ""), "error", "d1", T0, {})
              for school in ("s-bad", "s-good")]
    queued = notifier.tick(T0, Evaluation(alerts, set()), quiet=False)
    assert [n.school for n in queued] == ["s-good"]
    assert [item.school for item in store.outbox()] == ["s-good"]
    assert {r.alert.school: r.notified for r in notifier.records()} == {
        "s-bad": None, "s-good": "error"}
    broken.clear()
    queued = notifier.tick(T0 + 1000, Evaluation(alerts, set()), quiet=False)
    assert [n.school for n in queued] == ["s-bad"]
    assert sorted(item.school for item in store.outbox()) == ["s-bad", "s-good"]


def test_csv_cells_are_never_formulas() -> None:
    """A school named =HYPERLINK(...) (or +, -, @) is text in report.csv; numbers stay numbers."""
    data = report_data()
    hostile = ["=HYPERLINK(\"http://evil.example\",\"open\")", "+1+cmd", "-2+3", "@SUM(A1)"]
    rows = [dataclasses.replace(r, school=dataclasses.replace(r.school, name=hostile[i % 4]))
            for i, r in enumerate(data.rows)]
    text = render_csv(dataclasses.replace(data, rows=rows))
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@")]
    assert "'=HYPERLINK(\"http://evil.example\",\"open\")" in cells
    assert [c for c in cells if c.startswith("-")] == []
    for row in csv.DictReader(io.StringIO(text)):
        float(row["value"] or 0)  # numbers are written as numbers


class RefusingHandler:
    """A real SMTP server's DATA handler that refuses one message and keeps the others."""

    def __init__(self) -> None:
        self.kept: list[bytes] = []

    async def handle_DATA(self, _server: object, _session: object,  # noqa: N802
                          envelope: Any) -> str:
        """554 for the poisoned message, 250 for the rest."""
        if b"POISON" in envelope.content:
            return "554 5.6.0 message content refused"
        self.kept.append(envelope.content)
        return "250 OK"


def test_a_refused_message_stays_queued_and_the_others_are_sent(
        caplog: pytest.LogCaptureFixture) -> None:
    """aiosmtpd refuses school s1's mail: s2's and s3's go out on the same connection; s1's
    is not counted sent, and is logged once however often it is retried."""
    from aiosmtpd.controller import Controller

    handler = RefusingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sender = MailSender(SmtpSettings(host="127.0.0.1", port=port, starttls=False),
                            "alerts@d.example", ["it@d.example"],
                            lambda: smtplib.SMTP("127.0.0.1", port, timeout=10))
        items = [OutboxItem(i, f"s{i}", T0, b"Subject: x\r\n\r\n" + body, 0)
                 for i, body in ((1, b"POISON"), (2, b"fine 2"), (3, b"fine 3"))]
        assert sender.send(items) == [2, 3]
        assert sender.send(items[:1]) == []
        assert [b"fine 2" in m or b"fine 3" in m for m in handler.kept] == [True, True]
        assert len([r for r in caplog.records if "alert mail 1 " in r.getMessage()]) == 1
    finally:
        controller.stop()
