"""Linux ``cat /proc/uptime``: ``2591.20 4630.60``, seconds since boot (and idle seconds)."""

from __future__ import annotations

import re
from typing import Final

from agent.probes.ssh_parsers.model import ParseError, checked_lines, to_int

COMMAND: Final = "cat /proc/uptime"

_LINE: Final = re.compile(r"^\s*(\d+)(?:\.\d+)?\s+\d+(?:\.\d+)?\s*$")


def parse(text: str) -> int:
    """Whole seconds since boot."""
    lines = [line for line in checked_lines(COMMAND, text) if line.strip()]
    m = _LINE.match(lines[0])
    if len(lines) != 1 or m is None:
        raise ParseError(COMMAND, f"unexpected output: {lines[0].strip()[:80]!r}")
    return to_int(COMMAND, m.group(1))
