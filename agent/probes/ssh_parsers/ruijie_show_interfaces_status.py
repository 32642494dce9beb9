"""Ruijie RGOS ``show interfaces status``: one row per port.

``Interface Status Vlan Duplex Speed Type``; names contain a space (``GigabitEthernet 1/1``),
Status is up, down or disabled (administratively down), Speed ``1000M``/``10G``/``Unknown``,
Vlan a number or ``routed``.  Columns are read from the right, as many as the header names, so
rows parse whether the spacing is the device's or collapsed to single spaces (as in the only
capture found).  Names are returned with single spaces.
"""

from __future__ import annotations

import re
from typing import Final

from agent.probes.ssh_parsers.model import IfStatus, ParseError, checked_lines, speed_mbps

COMMAND: Final = "show interfaces status"

_HEADER: Final = re.compile(r"^\s*Interface\s+Status\s+\S", re.I)
_RULE: Final = re.compile(r"^[\s-]+$")
_STATUS: Final = frozenset({"up", "down", "disabled"})
_SPEED: Final = re.compile(r"^(unknown|auto|--|\d{1,7}(\.\d{1,3})?[KMG])$", re.I)


def parse(text: str) -> list[IfStatus]:
    """Every row; ParseError on rows that do not have the header's columns."""
    lines = checked_lines(COMMAND, text)
    start = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if start is None:
        raise ParseError(COMMAND, "no 'Interface Status ...' header")
    columns = [c.lower() for c in lines[start].split()[1:]]
    if "speed" not in columns:
        raise ParseError(COMMAND, f"no Speed column in {lines[start].strip()[:120]!r}")
    result = []
    for line in lines[start + 1 :]:
        if not line.strip() or _RULE.match(line):
            continue
        tokens = line.split()
        if len(tokens) < len(columns) + 1:
            raise ParseError(COMMAND, f"truncated row: {line.strip()[:120]!r}")
        name = " ".join(tokens[: len(tokens) - len(columns)])
        row = dict(zip(columns, tokens[len(tokens) - len(columns) :], strict=True))
        status = row["status"].lower()
        if status not in _STATUS or not _SPEED.match(row["speed"]):
            raise ParseError(COMMAND, f"unexpected row: {line.strip()[:120]!r}")
        result.append(IfStatus(name=name, up=status == "up", admin_down=status == "disabled",
                               speed_mbps=speed_mbps(row["speed"])))
    if not result:
        raise ParseError(COMMAND, "no interface rows")
    return result
