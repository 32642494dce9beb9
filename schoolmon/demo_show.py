"""What ``schoolmon demo`` shows at the end: the mission table per policy and the mails it caught.

Also the SMTP server the demo runs (aiosmtpd on loopback): every alert mail the collector sends
is kept whole as an .eml file, so a newcomer sees the real mail, not a log line about it.
"""

from __future__ import annotations

import datetime as dt
import email
import email.header
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from collector.reports import ReportData
from collector.reports.labels import rule_name

GRAFANA = Path(__file__).resolve().parents[1] / "dashboards"
MAX_MISSES_SHOWN = 4
TEXT: dict[str, dict[str, str]] = {
    "en": {"policy": "Policy", "schools": "schools", "target": "target", "meeting": "meeting",
           "goal": "goal", "miss": "schools that miss", "none": "-", "more": "and {n} more",
           "nodata": "no data", "no": "no"},
    "zh-CN": {"policy": "政策", "schools": "所学校", "target": "目标", "meeting": "达标比例",
              "goal": "要求", "miss": "未达标的学校", "none": "-", "more": "等 {n} 所",
              "nodata": "无数据", "no": "否"},
}


def width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, columns: int) -> str:
    """Cut or pad ``text`` to ``columns`` terminal columns."""
    out, used = "", 0
    for c in text:
        w = width(c)
        if used + w > columns:
            break
        out, used = out + c, used + w
    return out + " " * (columns - used)


def mission_table(data: ReportData, lang: str) -> list[str]:
    """Per target: the share of schools meeting it and the schools that miss, as lines."""
    t = TEXT[lang]
    names = {s.id: s.name or s.id for s in data.schools}
    lines = [f"{t['policy']} {data.policy}: {data.policy_title} "
             f"({data.period.first} .. {data.period.last}, {len(data.schools)} {t['schools']})",
             f"  {pad(t['target'], 44)} {pad(t['meeting'], 17)} {pad(t['goal'], 6)} {t['miss']}"]
    for s in data.summaries:
        share = s.share_pct
        meeting = (f"{share:5.1f}% ({s.met}/{s.counted})" if share is not None
                   else t["nodata"])
        mark = {True: "✓", False: "✗", None: " "}[s.reaches_target]
        missing = [r for r in data.misses if r.rule == s.rule.id]
        shown = []
        for r in missing[:MAX_MISSES_SHOWN]:
            if r.value is None:
                value = t["nodata"]
            elif r.unit == "0/1":  # a yes/no rule: the school's figure is "no"
                value = t["no"]
            else:
                value = f"{round(r.value, 1):g} {r.unit}".strip()
            shown.append(f"{names.get(r.school.id, r.school.id)} ({value})")
        if len(missing) > MAX_MISSES_SHOWN:
            shown.append(t["more"].format(n=len(missing) - MAX_MISSES_SHOWN))
        lines.append(f"  {pad(rule_name(s.rule.id, s.rule.title, lang), 44)} "
                     f"{pad(meeting, 17)} {mark}{s.target_pct:4.0f}% "
                     f"{', '.join(shown) or t['none']}")
    return lines


def decode_subject(raw: bytes) -> str:
    """The Subject of a mail, decoded (alert subjects are UTF-8 encoded words)."""
    msg = email.message_from_bytes(raw)
    parts = email.header.decode_header(msg.get("Subject", ""))
    return "".join(p.decode(c or "utf-8", "replace") if isinstance(p, bytes) else p
                   for p, c in parts)


class MailSink:
    """A local SMTP server keeping every mail it receives in ``directory`` (NNN.eml)."""

    def __init__(self, directory: Path, port: int) -> None:
        import logging

        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # a line per SMTP command
        self.directory = directory
        self.port = port
        directory.mkdir(parents=True, exist_ok=True)
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        """aiosmtpd's hook: store the mail whole."""
        count = len(list(self.directory.glob("*.eml")))
        raw = envelope.original_content or envelope.content
        (self.directory / f"{count + 1:03d}.eml").write_bytes(
            raw if isinstance(raw, bytes) else str(raw).encode())
        return "250 OK"

    def start(self) -> None:
        """Listen on 127.0.0.1:port."""
        self.controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self.controller.stop()

    def subjects(self) -> list[str]:
        """Subjects of the mails received so far, in order."""
        return [decode_subject(p.read_bytes()) for p in sorted(self.directory.glob("*.eml"))]


def show_mission(workdir: Path, collector_yaml: Path, result: Any, sink: MailSink, *,
                 lang: str, policies: tuple[str, ...]) -> int:
    """Evaluate the backfilled days, write the reports, print the mission table and the mails."""
    from collector.config import load_collector_config
    from collector.inventory import load_inventory
    from collector.reports import Period, ReportOptions, write_report
    tz = result.inventory.schools[0].timezone or "Asia/Shanghai"
    first, today = result.days[0], dt.datetime.now(ZoneInfo(tz)).date()
    evaluated = subprocess.run(
        [sys.executable, "-m", "schoolmon", "evaluate", "-c", str(collector_yaml),
         "--from", str(first), "--to", str(result.days[-1])],
        capture_output=True, text=True, check=False)
    if evaluated.returncode != 0:
        print(f"schoolmon demo: evaluate failed: {evaluated.stderr.strip()[-300:]}",
              file=sys.stderr)
        return 1
    print(f"\nschoolmon evaluate: compliance of the backfilled days {first} .. "
          f"{result.days[-1]} written (the reports' trend)")
    config = load_collector_config(collector_yaml)
    inventory = load_inventory(workdir / "inventory.yaml")  # names and categories
    for policy in policies:
        out = workdir / "report" / policy
        data = write_report(config, collector_yaml, ReportOptions(
            policy, Period(first, today, tz), out, lang), inventory=inventory)
        print()
        print("\n".join(mission_table(data, lang)))
        print(f"  report: {out / 'report.html'}  and  {out / 'report.csv'}")
        print(f"  (schoolmon report -c {collector_yaml} --policy {policy} --from {first} "
              f"--to {today} --out {out} --lang {lang})")
    subjects = sink.subjects()
    print(f"\nAlert mails the local SMTP server received ({len(subjects)}; whole mails in "
          f"{sink.directory}):")
    print("\n".join(f"  {s}" for s in subjects[:12]) or "  (none)")
    if len(subjects) > 12:
        print(f"  ... and {len(subjects) - 12} more")
    print(f"\nGrafana: provisioning in {GRAFANA}/provisioning (datasources, dashboards), "
          f"dashboards in {GRAFANA}/json; see docs/dashboards.md")
    return 0
