"""`schoolmon demo`: the README's first command shows the mission (is each school on target?),
the alert mails and the reports, then cleans up."""

from __future__ import annotations

import csv
import email
import re
import subprocess
from pathlib import Path

import pytest

from schoolmon.demo import DEMO_SEED
from schoolmon.demo_config import POLICIES
from schoolmon.demo_show import decode_subject
from schoolmon.sim.plan import make_plan
from schoolmon.sim.spec import SimulationSpec
from tests.conftest import schoolmon_cmd

pytestmark = pytest.mark.integration
SCHOOLS = 20


def test_demo_shows_the_mission_mails_and_reports(tmp_path: Path) -> None:
    """A short demo run: exit 0, the mission table per policy matching the simulated plan,
    the mails the SMTP server caught, both reports, points of each local kind, no service left."""
    result = subprocess.run(schoolmon_cmd("demo", "--duration", "15", "--dir", str(tmp_path),
                                          "--lang", "en", "--schools", str(SCHOOLS)),
                            capture_output=True, text=True, timeout=180, check=False)
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:] + out[-2000:]
    assert re.search(r"^\s+\[\s*\d+s\] district backfill", out, re.MULTILINE)  # progress lines

    # The mission table: the share meeting "Access >= 10 Mbit/s" is the plan's, plus this
    # machine (its loopback speed test is far above 10 Mbit/s).
    plan = make_plan(SimulationSpec(), SCHOOLS, seed=DEMO_SEED)
    met = round(plan.share_at_least(10) * SCHOOLS) + 1
    row = re.search(r"^\s+Access >= 10 Mbit/s\s+([\d.]+)% \((\d+)/(\d+)\)\s+[✓✗ ]\s*\d+%\s+(.*)$",
                    out, re.MULTILINE)
    assert row, out
    assert (int(row[2]), int(row[3])) == (met, SCHOOLS + 1)
    slow = [s.name for s in plan.schools if not s.access_at_least(10)]
    assert 0 < len(slow) <= 4 and all(f"{name} (" in row[4] for name in slow), row[0]
    for policy in POLICIES:
        heading = rf"^Policy {policy}: .+\(\d{{4}}-\d\d-\d\d \.\. .+, {SCHOOLS + 1} schools\)"
        assert re.search(heading, out, re.MULTILINE), out

    # The mails: as many subjects printed as .eml files kept, each a real alert mail.
    mails = sorted((tmp_path / "mail").glob("*.eml"))
    m = re.search(r"^Alert mails the local SMTP server received \((\d+); whole mails in (\S+)\)",
                  out, re.MULTILINE)
    assert m and int(m[1]) == len(mails) > 0 and Path(m[2]) == tmp_path / "mail", out
    for path in mails[:12]:
        subject = decode_subject(path.read_bytes())
        assert subject.startswith("[schoolmon FIRING]") and f"  {subject}" in out
        assert email.message_from_bytes(path.read_bytes())["To"] == \
            "district-it@schoolmon.example"

    # The reports: HTML and CSV per policy, every school in the CSV, backfilled days evaluated.
    assert "schoolmon evaluate: compliance of the backfilled days" in out
    for policy in POLICIES:
        html = tmp_path / "report" / policy / "report.html"
        assert f"report: {html}" in out
        page = html.read_text(encoding="utf-8")
        assert 'data-rule="' in page
        # The trend: a point per backfilled day (schoolmon evaluate) and today (the live pass).
        trend = re.findall(r'<polyline points="([^"]+)"', page)
        assert trend and all(len(line.split()) >= 3 for line in trend), trend
        with open(html.with_name("report.csv"), encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        assert {r["school"] for r in rows} == {s.id for s in plan.schools} | {"demo-local"}
        assert {r["policy"] for r in rows} == {policy}
    assert "dashboards/provisioning" in out

    counts = dict(re.findall(r"^\s+(\w+)\s+(\d+) points", out, re.MULTILINE))
    assert set(counts) == {"iface", "host", "reach", "speedtest", "agent"}, out
    assert all(int(n) > 0 for n in counts.values()), counts
    assert int(counts["iface"]) > int(counts["host"])  # 2 s interval against 5 s
    assert not list((tmp_path / "services").glob("*.pid"))  # services.sh stop removed them
