"""Huawei VRP ``display interface brief``: state and error counters of every interface.

A legend, then ``Interface PHY Protocol InUti OutUti inErrors outErrors`` rows.  PHY is
``up``/``down`` with a marker: ``*down`` administratively down, ``^down`` standby, ``up(l)``
loopback, ``down(e)``/``(b)``/``(dl)``... protocol-level reasons; Protocol ``up(s)`` is spoofing
(NULL0, loopbacks: up).  Names may carry a flag such as ``(v)`` (VirtualPort) or a speed such as
``(10G)``, which are not part of the name.  Eth-Trunk members are listed indented.
"""

from __future__ import annotations

import re
from typing import Final

from agent.probes.ssh_parsers.model import (
    IfStatus,
    ParseError,
    checked_lines,
    speed_mbps,
    strict,
    to_int,
)

COMMAND: Final = "display interface brief"

_HEADER: Final = re.compile(r"^\s*Interface\s+PHY\s+Protocol\b", re.I)
_STATE: Final = re.compile(r"^([*^#])?(up|down)(\([a-z]{1,3}\))?$", re.I)
_PROTO: Final = re.compile(r"^(up|down|--)(\([a-z]{1,3}\))?$", re.I)
_UTIL: Final = re.compile(r"^(--|\d{1,3}(\.\d+)?%)$")
_ROW: Final = re.compile(r"^\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s*$")
_NAME_FLAG: Final = re.compile(r"^(?P<name>.+?)(?:\((?P<flag>[A-Za-z0-9.]{1,6})\))?$")


def parse(text: str) -> list[IfStatus]:
    """Every row of the table."""
    lines = checked_lines(COMMAND, text)
    start = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if start is None:
        raise ParseError(COMMAND, "no 'Interface PHY Protocol' header")
    result = []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        m = strict(COMMAND, line, _ROW)
        raw_name, phy, proto, in_util, out_util = m.group(1, 2, 3, 4, 5)
        phy_m, proto_m = _STATE.match(phy), _PROTO.match(proto)
        if (phy_m is None or proto_m is None or not _UTIL.match(in_util)
                or not _UTIL.match(out_util)):
            raise ParseError(COMMAND, f"unexpected row: {line.strip()[:120]!r}")
        name_m = _NAME_FLAG.match(raw_name)
        assert name_m is not None  # '.+?' matches any non-empty name
        flag = name_m.group("flag") or ""
        phy_up = phy_m.group(2).lower() == "up"
        proto_up = proto_m.group(1).lower() != "down"  # '--': no protocol (e.g. a tunnel)
        result.append(IfStatus(
            name=name_m.group("name"),
            up=phy_up and proto_up,
            admin_down=phy_m.group(1) == "*",
            speed_mbps=speed_mbps(flag),
            in_errors=to_int(COMMAND, m.group(6)),
            out_errors=to_int(COMMAND, m.group(7)),
        ))
    if not result:
        raise ParseError(COMMAND, "no interface rows")
    return result
