"""Linux ``grep -H . /sys/class/net/*/speed``: link speed in Mbit/s per interface.

``/sys/class/net/eth0/speed:1000``.  Interfaces without a speed (loopback, most virtual ones)
fail to read and print nothing (errors go to /dev/null); ``-1`` means unknown.  So the output
may be empty.
"""

from __future__ import annotations

import re
from typing import Final

from agent.probes.ssh_parsers.model import IfStatus, ParseError, checked_lines, to_int

COMMAND: Final = "grep -H . /sys/class/net/*/speed 2>/dev/null"

_LINE: Final = re.compile(r"^/sys/class/net/([^/\s]+)/speed:(-?\d+)\s*$")


def parse(text: str) -> list[IfStatus]:
    """Every interface with a readable speed (None when the kernel says -1 or 0)."""
    result = []
    for line in checked_lines(COMMAND, text, may_be_empty=True):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise ParseError(COMMAND, f"unexpected line: {line.strip()[:120]!r}")
        value = m.group(2)
        speed = None if value.startswith("-") else to_int(COMMAND, value) or None
        result.append(IfStatus(name=m.group(1), speed_mbps=speed))
    return result
