"""Ruijie RGOS ``show interfaces``: per-interface blocks in the Cisco manner.

``GigabitEthernet 9/21 is UP  , line protocol is UP`` opens a block (an ``Index(dec):..`` line
may precede it); ``oper speed is 1000M``; the device's rate ``10 seconds input rate N
bits/sec``; counters ``N packets input, N bytes`` and ``N input errors``.  Names are returned
with single spaces, as ``show interfaces status`` is read.
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

COMMAND: Final = "show interfaces"

# The name is at most four words ('GigabitEthernet 9/21'): an unbounded '(\S.*?) is ' retried
# the rest of the line at every ' is ' (quadratic on a line of ' is is is ...').
_HEAD: Final = re.compile(
    r"^(\S+(?:\s+\S+){0,3}?) is ([A-Za-z](?:[A-Za-z -]*[A-Za-z-])?)\s*,"
    r"\s*line protocol is ([A-Za-z-]+)", re.I)
_PHYS: Final = frozenset({"UP", "DOWN", "ADMINISTRATIVELY DOWN"})
_INDEX: Final = re.compile(r"^\s*Index\(dec\)", re.I)
_SPEED: Final = re.compile(r"oper speed is (\S+?)\s*(?:,|$)", re.I)
_RATE_KEY: Final = re.compile(r"^\s*\d+ (?:seconds?|minutes?) (input|output) rate", re.I)
_RATE: Final = re.compile(r"^\s*\d+ (?:seconds?|minutes?) (input|output) rate (\d+) bits/sec", re.I)
_COUNT_KEY: Final = re.compile(r"^\s*\d+ packets (input|output)", re.I)
_COUNT: Final = re.compile(r"^\s*(\d+) packets (input|output), (\d+) bytes", re.I)
_ERR_KEY: Final = re.compile(r"^\s*\d+ (input|output) errors", re.I)
_ERR: Final = re.compile(r"^\s*(\d+) (input|output) errors", re.I)


def parse(text: str) -> list[IfStatus]:
    """Every interface block."""
    found: list[tuple[str, str, str, dict[str, int | float | None]]] = []
    for line in checked_lines(COMMAND, text):
        if (head := _HEAD.match(line)) is not None:
            found.append((" ".join(head.group(1).split()), head.group(2).upper(),
                          head.group(3).upper(), {}))
            continue
        if not found:
            if line.strip() and not _INDEX.match(line):
                raise ParseError(COMMAND, f"text before the first interface: {line[:80]!r}")
            continue
        v = found[-1][3]
        if (speed := _SPEED.search(line)) is not None:
            v["speed"] = speed_mbps(speed.group(1))
        elif _RATE_KEY.match(line):
            m = strict(COMMAND, line, _RATE)
            key = "in_bps" if m.group(1).lower() == "input" else "out_bps"
            v[key] = float(to_int(COMMAND, m.group(2)))
        elif _COUNT_KEY.match(line):
            m = strict(COMMAND, line, _COUNT)
            d = "in" if m.group(2).lower() == "input" else "out"
            v[f"{d}_packets"] = to_int(COMMAND, m.group(1))
            v[f"{d}_octets"] = to_int(COMMAND, m.group(3))
        elif _ERR_KEY.match(line):
            m = strict(COMMAND, line, _ERR)
            v["in_errors" if m.group(2).lower() == "input" else "out_errors"] = \
                to_int(COMMAND, m.group(1))
    if not found:
        raise ParseError(COMMAND, "no '<interface> is ..., line protocol is ...' line")
    return [_status(*item) for item in found]


def _status(name: str, phys: str, proto: str, v: dict[str, int | float | None]) -> IfStatus:
    def num(key: str) -> int | None:
        value = v.get(key)
        return None if value is None else int(value)

    def rate(key: str) -> float | None:
        value = v.get(key)
        return None if value is None else float(value)

    if phys not in _PHYS or proto not in ("UP", "DOWN"):
        raise ParseError(COMMAND, f"{name}: unexpected or truncated state {phys[:30]!r} / "
                         f"{proto[:30]!r}")
    return IfStatus(
        name=name, up=phys == "UP" and proto == "UP", admin_down="ADMINISTRATIVELY" in phys,
        speed_mbps=num("speed"), in_bps=rate("in_bps"), out_bps=rate("out_bps"),
        in_errors=num("in_errors"), out_errors=num("out_errors"),
        in_octets=num("in_octets"), out_octets=num("out_octets"),
        in_packets=num("in_packets"), out_packets=num("out_packets"),
    )
