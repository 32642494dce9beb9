"""The ``<device> uptime is 2 years, 31 weeks, 6 days, 9 hours, 55 minutes`` line that Huawei,
Comware and Cisco print in their version output; the first such line is the device's own (the
ones after it are per board)."""

from __future__ import annotations

import re
from typing import Final

from agent.probes.ssh_parsers.model import ParseError, checked_lines, to_int

_LINE: Final = re.compile(r"\buptime is\s+(\S.*)$", re.I)
_PART: Final = re.compile(r"^(\d+)\s*(year|week|day|hour|minute|second)s?$", re.I)
_SECONDS: Final = {"year": 365 * 86400, "week": 7 * 86400, "day": 86400, "hour": 3600,
                   "minute": 60, "second": 1}


def uptime_seconds(command: str, text: str) -> int:
    """Seconds since the device started, from its first 'uptime is' line."""
    for line in checked_lines(command, text):
        m = _LINE.search(line)
        if m is None:
            continue
        total, unit_name = 0, ""
        for part in m.group(1).strip().rstrip(".").split(","):
            unit = _PART.match(part.strip())
            if unit is None:
                raise ParseError(command, f"unreadable uptime: {line.strip()[:120]!r}")
            unit_name = unit.group(2).lower()
            total += to_int(command, unit.group(1)) * _SECONDS[unit_name]
        # Devices count down to minutes: a phrase ending in days or hours was cut off.
        if unit_name not in ("minute", "second"):
            raise ParseError(command, f"uptime cut short: {line.strip()[:120]!r}")
        return total
    raise ParseError(command, "no 'uptime is' line")
