"""Cisco IOS ``show interfaces``: per-interface blocks, routers and Catalyst switches.

``FastEthernet1/0/1 is up, line protocol is up (connected)`` opens a block (also ``is
administratively down``, ``is down, line protocol is down (notconnect|err-disabled)``).  The
device's rate is ``5 minute input rate N bits/sec`` (``30 second`` when configured); speed is the
operating one from the duplex line (``Full-duplex, 100Mb/s`` on Catalyst, ``Full Duplex,
100Mbps`` on routers; ``Auto-speed`` when down) -- ``BW`` is a routing metric, not a speed.
Subinterfaces, SVIs and tunnels have no speed line.
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

_HEAD: Final = re.compile(
    r"^(\S+) is ([a-z][a-z -]*?), line protocol is ([a-z-]+)(?: \(([^)]*)\))?\s*$", re.I)
_PHYS: Final = frozenset({"up", "down", "administratively down", "deleted", "testing"})
_LINE_PROTOCOL: Final = frozenset({"up", "down", "dormant", "testing"})
_SPEED: Final = re.compile(r"^\s*(?:Full|Half|Auto|a-full|a-half)[- ]duplex,\s*([^,\s][^,]*)", re.I)
_RATE_KEY: Final = re.compile(r"^\s*\d+ (?:seconds?|minutes?) (input|output) rate", re.I)
_RATE: Final = re.compile(r"^\s*\d+ (?:seconds?|minutes?) (input|output) rate (\d+) bits/sec", re.I)
_COUNT_KEY: Final = re.compile(r"^\s*\d+ packets (input|output)", re.I)
_COUNT: Final = re.compile(r"^\s*(\d+) packets (input|output), (\d+) bytes", re.I)
_ERR_KEY: Final = re.compile(r"^\s*\d+ (input|output) errors", re.I)
_ERR: Final = re.compile(r"^\s*(\d+) (input|output) errors", re.I)


class _Block:
    def __init__(self, name: str, phys: str, proto: str) -> None:
        self.name, self.phys, self.proto = name, phys.lower(), proto.lower()
        self.ints: dict[str, int | None] = {}
        self.bps: dict[str, float] = {}

    def result(self) -> IfStatus:
        if self.phys not in _PHYS or self.proto not in _LINE_PROTOCOL:
            raise ParseError(COMMAND, f"{self.name}: unexpected or truncated state "
                             f"{self.phys[:30]!r} / {self.proto[:30]!r}")
        v = self.ints
        return IfStatus(
            name=self.name, up=self.phys == "up" and self.proto == "up",
            admin_down=self.phys == "administratively down", speed_mbps=v.get("speed"),
            in_bps=self.bps.get("in"), out_bps=self.bps.get("out"),
            in_errors=v.get("in_errors"), out_errors=v.get("out_errors"),
            in_octets=v.get("in_octets"), out_octets=v.get("out_octets"),
            in_packets=v.get("in_packets"), out_packets=v.get("out_packets"),
        )


def _line(b: _Block, line: str) -> None:
    if (speed := _SPEED.match(line)) is not None:
        b.ints["speed"] = speed_mbps(speed.group(1))  # 'Auto-speed', 'Auto Speed': None
    elif _RATE_KEY.match(line):
        m = strict(COMMAND, line, _RATE)
        b.bps["in" if m.group(1).lower() == "input" else "out"] = float(
            to_int(COMMAND, m.group(2)))
    elif _COUNT_KEY.match(line):
        m = strict(COMMAND, line, _COUNT)
        d = "in" if m.group(2).lower() == "input" else "out"
        b.ints[f"{d}_packets"] = to_int(COMMAND, m.group(1))
        b.ints[f"{d}_octets"] = to_int(COMMAND, m.group(3))
    elif _ERR_KEY.match(line):
        m = strict(COMMAND, line, _ERR)
        d = "in" if m.group(2).lower() == "input" else "out"
        b.ints[f"{d}_errors"] = to_int(COMMAND, m.group(1))


def parse(text: str) -> list[IfStatus]:
    """Every interface block."""
    blocks: list[_Block] = []
    for line in checked_lines(COMMAND, text):
        if (head := _HEAD.match(line)) is not None:
            blocks.append(_Block(head.group(1), head.group(2), head.group(3)))
        elif blocks:
            _line(blocks[-1], line)
        elif line.strip():
            raise ParseError(COMMAND, f"text before the first interface: {line[:80]!r}")
    if not blocks:
        raise ParseError(COMMAND, "no '<interface> is ..., line protocol is ...' line")
    return [b.result() for b in blocks]
