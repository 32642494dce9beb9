"""Linux ``ip -o link``: one line per interface with its flags and operational state.

``1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN ...``.  An interface is up
when it is administratively up (flag UP), has carrier (LOWER_UP) and its state is UP or UNKNOWN
(loopback and many virtual interfaces never report UP).  ``veth0@if5`` is named ``veth0``, as in
/proc/net/dev.
"""

from __future__ import annotations

import re
from typing import Final

from agent.probes.ssh_parsers.model import IfStatus, ParseError, checked_lines

COMMAND: Final = "ip -o link"

_LINE: Final = re.compile(
    r"^\d+: ([^\s:@]+)(?:@\S*)?: <([A-Z0-9_,-]*)> .*?\bstate ([A-Z]+)\b")


def parse(text: str) -> list[IfStatus]:
    """Every interface's state."""
    result = []
    for line in checked_lines(COMMAND, text):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise ParseError(COMMAND, f"unexpected or truncated line: {line.strip()[:120]!r}")
        flags = set(m.group(2).split(","))
        admin_up = "UP" in flags
        up = admin_up and "LOWER_UP" in flags and m.group(3) in ("UP", "UNKNOWN")
        result.append(IfStatus(name=m.group(1), up=up, admin_down=not admin_up))
    return result
