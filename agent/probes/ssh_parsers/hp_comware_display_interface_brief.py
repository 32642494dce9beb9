"""H3C/HPE Comware ``display interface brief``: a route-mode and a bridge-mode table.

Route mode: ``Interface Link Protocol Main IP Description`` (Comware 5: ``Protocol-link``);
bridge mode: ``Interface Link Speed Duplex Type PVID Description``.  Link is UP, DOWN,
ADM (administratively down) or Stby (standby); Protocol ``UP(s)`` is spoofing, ``--`` none.
Comware 7 abbreviates names (GE0/0/1, XGE0/0/10, BAGG10, Vlan1) where ``display interface``
prints them in full: :func:`full_name` expands them so both commands name an interface alike.
"""

from __future__ import annotations

import re
from typing import Final

from agent.probes.ssh_parsers.model import IfStatus, ParseError, checked_lines, speed_mbps

COMMAND: Final = "display interface brief"

_HEADER: Final = re.compile(r"^\s*Interface\s+Link\s+(Protocol(?:-link)?|Speed)\b", re.I)
_LINK: Final = re.compile(r"^(UP|DOWN|ADM|STBY)(\([a-z]{1,3}\))?$", re.I)
_PROTO: Final = re.compile(r"^(UP|DOWN|--)(\([a-z]{1,10}\))?$", re.I)
_SPEED: Final = re.compile(r"^(auto|unknown|--|\d{1,7}(\.\d{1,3})?[KMG](\(a\))?)$", re.I)

# Comware 7 abbreviations as printed by 'display interface brief' (H3C "Interface name
# abbreviations"); longest first so 'XGE' is not read as 'GE' after an X.
_ABBREVIATIONS: Final = (
    ("M-GE", "M-GigabitEthernet"), ("BAGG", "Bridge-Aggregation"),
    ("RAGG", "Route-Aggregation"), ("InLoop", "InLoopBack"), ("Loop", "LoopBack"),
    ("REG", "Register-Tunnel"), ("XGE", "Ten-GigabitEthernet"), ("FGE", "FortyGigE"),
    ("HGE", "HundredGigE"), ("WGE", "Twenty-FiveGigE"), ("MGE", "M-GigabitEthernet"),
    ("GE", "GigabitEthernet"), ("Vlan", "Vlan-interface"), ("Tun", "Tunnel"),
    ("Dia", "Dialer"), ("MP", "MP-group"), ("Eth", "Ethernet"), ("Ser", "Serial"),
)


def full_name(name: str) -> str:
    """'GE0/0/1' -> 'GigabitEthernet0/0/1'; full names and unknown prefixes are kept."""
    m = re.match(r"^([A-Za-z-]+)(\d.*)$", name)
    if m is None:
        return name
    for short, full in _ABBREVIATIONS:
        if m.group(1) == short:
            return full + m.group(2)
    return name


def parse(text: str) -> list[IfStatus]:
    """Rows of both tables, names as printed."""
    result: list[IfStatus] = []
    mode: str | None = None  # column after Link in the current table: protocol or speed
    for line in checked_lines(COMMAND, text):
        if (header := _HEADER.match(line)) is not None:
            mode = "speed" if header.group(1).lower() == "speed" else "protocol"
            continue
        if not line.strip():
            mode = None  # a blank line ends a table; legends follow until the next header
            continue
        if mode is None:
            continue
        tokens = line.split()
        if len(tokens) < 3 or _LINK.match(tokens[1]) is None:
            raise ParseError(COMMAND, f"unexpected or truncated row: {line.strip()[:120]!r}")
        link = tokens[1].upper()
        if mode == "protocol":
            proto = _PROTO.match(tokens[2])
            if proto is None:
                raise ParseError(COMMAND, f"unexpected protocol state: {line.strip()[:120]!r}")
            up = link.startswith("UP") and proto.group(1).upper() != "DOWN"
            result.append(IfStatus(name=tokens[0], up=up, admin_down=link == "ADM"))
        else:
            if len(tokens) < 4 or _SPEED.match(tokens[2]) is None:
                raise ParseError(COMMAND, f"unexpected speed/duplex: {line.strip()[:120]!r}")
            result.append(IfStatus(name=tokens[0], up=link.startswith("UP"),
                                   admin_down=link == "ADM", speed_mbps=speed_mbps(tokens[2])))
    if not result:
        raise ParseError(COMMAND, "no 'Interface Link ...' table with rows")
    return result
