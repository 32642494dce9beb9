"""Huawei VRP ``display interface``: per-interface blocks with rates, speed and counters.

A block starts ``<name> current state : UP|DOWN|Administratively DOWN`` and is followed by
``Line protocol current state : UP|DOWN|UP (spoofing)``.  Rates are the device's own
``Last 300 seconds input rate N bits/sec``; speed is ``Speed : 1000`` (ports) or
``Current BW: 2G`` (Eth-Trunk); counters are ``Input:  N packets, N bytes`` and errors
``Total Error: N`` (physical ports) or ``N errors`` (loopback-style interfaces).
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

COMMAND: Final = "display interface"

_HEAD: Final = re.compile(r"^(\S+) current state ?: ?(\S(?:.*\S)?)\s*$")
_PROTO: Final = re.compile(r"^Line protocol current state ?: ?(\S(?:.*\S)?)\s*$")
# 'UP', 'DOWN', 'Administratively DOWN', 'UP (spoofing)': anything else is cut off or unknown.
_STATE: Final = re.compile(r"^(?:ADMINISTRATIVELY\s+)?(UP|DOWN)\b", re.I)
# Lines that announce a value, and the exact form the value must then have.
_RATE_KEY: Final = re.compile(r"^\s*Last \d+ seconds? (input|output) rate", re.I)
_RATE: Final = re.compile(r"^\s*Last \d+ seconds? (input|output) rate:?\s+(\d+) bits/sec,", re.I)
_COUNT_KEY: Final = re.compile(r"^\s*(Input|Output)\s*:", re.I)
# 'Input:  6460 packets, 768740 bytes', 'Input: 0 packets,0 bytes', 'Input: 0 bytes', or a bare
# 'Input:' opening the section of error lines.
_COUNT: Final = re.compile(
    r"^\s*(Input|Output)\s*:\s*(?:(?:(\d+) packets?,\s*)?(\d+) bytes?\s*(?:,.*)?)?$", re.I)
_SPEED_KEY: Final = re.compile(r"^Speed\s*:", re.I)
_SPEED: Final = re.compile(r"^Speed\s*:\s*(\d+|AUTO|-)\s*(?:,|$)", re.I)
# Eth-Trunk: 'Maximal BW: 40G, Current BW: 0M' (the sum of the members that are up).
_TRUNK_BW: Final = re.compile(r"Current BW\s*:\s*(\d+(?:\.\d+)?[KMGT])\b")
_TOTAL_ERR: Final = re.compile(r"Total Error\s*:\s*(\d+)")
_ERRORS: Final = re.compile(r"^\s*(\d+) errors\b")


class _Block:
    """What one interface's lines have said so far."""

    def __init__(self, name: str, state: str) -> None:
        self.name = name
        self.state = state.upper()
        self.proto: str | None = None
        self.section: str | None = None  # 'input' or 'output': where error lines belong
        self.values: dict[str, int | float | None] = {}

    def result(self) -> IfStatus:
        if self.proto is None:
            raise ParseError(COMMAND, f"{self.name}: no 'Line protocol current state' line "
                             "(truncated output?)")
        if not _STATE.match(self.state) or not _STATE.match(self.proto):
            raise ParseError(COMMAND, f"{self.name}: unexpected or truncated state "
                             f"{self.state[:30]!r} / {self.proto[:30]!r}")
        v = self.values
        return IfStatus(
            name=self.name,
            up=self.state.startswith("UP") and self.proto.upper().startswith("UP"),
            admin_down="ADMINISTRATIVELY" in self.state,
            speed_mbps=_int_or_none(v.get("speed")),
            in_bps=v.get("in_bps"), out_bps=v.get("out_bps"),
            in_errors=_int_or_none(v.get("in_errors")),
            out_errors=_int_or_none(v.get("out_errors")),
            in_octets=_int_or_none(v.get("in_octets")),
            out_octets=_int_or_none(v.get("out_octets")),
            in_packets=_int_or_none(v.get("in_packets")),
            out_packets=_int_or_none(v.get("out_packets")),
        )


def _int_or_none(value: int | float | None) -> int | None:
    return None if value is None else int(value)


def _line(block: _Block, line: str) -> None:
    v = block.values
    if _RATE_KEY.match(line):
        m = strict(COMMAND, line, _RATE)
        direction = "in" if m.group(1).lower() == "input" else "out"
        v.setdefault(f"{direction}_bps", float(to_int(COMMAND, m.group(2))))
    elif _COUNT_KEY.match(line):
        m = strict(COMMAND, line, _COUNT)
        block.section = m.group(1).lower()
        direction = "in" if block.section == "input" else "out"
        if m.group(2) is not None:
            v[f"{direction}_packets"] = to_int(COMMAND, m.group(2))
        if m.group(3) is not None:
            v[f"{direction}_octets"] = to_int(COMMAND, m.group(3))
    elif _SPEED_KEY.match(line):
        value = strict(COMMAND, line, _SPEED).group(1)
        v["speed"] = to_int(COMMAND, value) if value.isdigit() else None
    elif (bw := _TRUNK_BW.search(line)) is not None:
        v["speed"] = speed_mbps(bw.group(1))  # 0M (no member up) -> None
    elif (err := _TOTAL_ERR.search(line) or _ERRORS.match(line)) is not None:
        if block.section is None:
            raise ParseError(COMMAND, f"{block.name}: error count outside Input/Output")
        key = "in_errors" if block.section == "input" else "out_errors"
        v[key] = to_int(COMMAND, err.group(1))


def parse(text: str) -> list[IfStatus]:
    """Every interface block."""
    blocks: list[_Block] = []
    for line in checked_lines(COMMAND, text):
        if (head := _HEAD.match(line)) is not None:
            blocks.append(_Block(head.group(1), head.group(2)))
        elif not blocks:
            if line.strip():
                raise ParseError(COMMAND, f"text before the first interface: {line[:80]!r}")
        elif (proto := _PROTO.match(line)) is not None:
            blocks[-1].proto = proto.group(1)
        else:
            _line(blocks[-1], line)
    if not blocks:
        raise ParseError(COMMAND, "no '<interface> current state' line")
    return [b.result() for b in blocks]
