"""`schoolmon demo`: the README's first command shows data landing, then cleans up."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import schoolmon_cmd

pytestmark = pytest.mark.integration


def test_demo_lands_every_kind_and_stops_its_services(tmp_path: Path) -> None:
    """A short demo run: exit 0, points of each kind, and no service left running."""
    result = subprocess.run(schoolmon_cmd("demo", "--duration", "15", "--dir", str(tmp_path)),
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = dict(re.findall(r"^\s+(\w+)\s+(\d+) points", result.stdout, re.MULTILINE))
    assert set(counts) == {"iface", "host", "reach", "speedtest", "agent"}, result.stdout
    assert all(int(n) > 0 for n in counts.values()), counts
    assert int(counts["iface"]) > int(counts["host"])  # 2 s interval against 5 s
    assert not list((tmp_path / "services").glob("*.pid"))  # services.sh stop removed them
