"""The wifi probe's production runner on real processes, and the real ``iw`` binary.

This machine has no Wi-Fi radio (no cfg80211 in the kernel), so the real ``iw`` can only show
the failure path: the probe must turn it into one clear ProbeError, not a traceback.
"""

from __future__ import annotations

import shutil
import sys
import time

import pytest

from agent.probes.base import ProbeError
from agent.probes.wifi import CommandError, WifiSettings, run_command

pytestmark = pytest.mark.integration


def py(code: str) -> list[str]:
    """A real process running Python code."""
    return [sys.executable, "-c", code]


def test_stdout_bytes_returned_verbatim() -> None:
    """GBK bytes come back untouched (decoding is the parsers' business)."""
    out = run_command(py("import sys; sys.stdout.buffer.write('信号 : 99%'.encode('gbk'))"), 10)
    assert out == "信号 : 99%".encode("gbk")


def test_failure_with_stdout_is_returned_for_the_parser() -> None:
    """netsh prints 'radio off' on stdout and fails: the text goes to the parser."""
    out = run_command(py("print('Interface name : Wi-Fi'); raise SystemExit(1)"), 10)
    assert out.strip() == b"Interface name : Wi-Fi"


def test_failure_without_stdout_is_command_error_with_stderr() -> None:
    """A failure with nothing on stdout: exit code and the first stderr line."""
    with pytest.raises(CommandError, match=r"exit 3: command failed: Network is down"):
        run_command(py("import sys; sys.stderr.write('command failed: Network is down (-100)"
                       "\\nmore\\n'); raise SystemExit(3)"), 10)


def test_missing_command_and_timeout() -> None:
    """Not in PATH, or too slow: CommandError, and the timeout is kept."""
    with pytest.raises(CommandError, match="schoolmon-no-such-tool: not found in PATH"):
        run_command(["schoolmon-no-such-tool", "dev"], 10)
    started = time.monotonic()
    with pytest.raises(CommandError, match=r"no result within 0.5s"):
        run_command(py("import time; time.sleep(30)"), 0.5)
    assert time.monotonic() - started < 5


def test_english_messages_requested_from_linux_tools() -> None:
    """The runner asks for the C locale so nmcli and iw answer in English."""
    assert run_command(py("import os; print(os.environ['LC_ALL'])"), 10).strip() == b"C.UTF-8"


def test_real_iw_without_radio_is_one_clear_probe_error() -> None:
    """method auto picks the real iw from PATH; with no nl80211 it is a ProbeError."""
    assert shutil.which("iw"), "iw must be installed (Debian package iw)"
    probe = WifiSettings.model_validate({"type": "wifi", "classroom": "301",
                                         "ssids": ["School-WiFi"]}).build()
    assert probe.method() == "iw"
    with pytest.raises(ProbeError, match=r"^wifi 301 \(iw\): iw dev: exit \d+: nl80211 not found"):
        probe.collect()
