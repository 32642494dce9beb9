"""H3C/HPE Comware ``display interface``: per-interface blocks, Comware 5 and 7.

Comware 7 starts a block with the bare name, then ``Current state: UP|DOWN|Administratively
DOWN|STP DOWN`` and ``Line protocol state: UP|UP(spoofing)``; Comware 5 with ``<name> current
state: DOWN ( Administratively )`` and, on routed interfaces, ``Line protocol current state``.
Rates are in bytes/sec (``Last 300 seconds input: N packets/sec N bytes/sec N%``, or
``Last 30 seconds input rate: N bytes/sec, N bits/sec, N packets/sec`` on logical interfaces);
speed is ``1000Mbps-speed mode`` (``Unknown-speed mode`` when down).  The per-protocol
``IPv4/IPv6 traffic statistics`` that follow some blocks are not the interface's totals.
"""

from __future__ import annotations

import re
from typing import Final

from agent.probes.ssh_parsers.model import (
    IfStatus,
    ParseError,
    checked_lines,
    opt_int,
    speed_mbps,
    strict,
    to_int,
)

COMMAND: Final = "display interface"

_NAME: Final = re.compile(r"^(\S+)\s*$")
_STATE7: Final = re.compile(r"^Current state\s*:\s*(\S(?:.*\S)?)\s*$", re.I)
_HEAD5: Final = re.compile(r"^\s*(\S+) current state\s*:\s*(\S(?:.*\S)?)\s*$", re.I)
_PROTO: Final = re.compile(r"^\s*Line protocol (?:current )?state\s*:\s*(\S(?:.*\S)?)\s*$", re.I)
_SPEED: Final = re.compile(r"^\s*(\d+(?:\.\d+)?[MG])bps-speed mode", re.I)
_RATE_KEY: Final = re.compile(r"^\s*Last \d+ seconds? (input|output)\b", re.I)
_RATE: Final = re.compile(
    r"^\s*Last \d+ seconds? (input|output)(?::\s*(\d+) packets/sec\s+(\d+) bytes/sec"
    r"|\s+rate:\s*(\d+) bytes/sec,)", re.I)
_COUNT_KEY: Final = re.compile(r"^\s*(Input|Output)(\s*\(total\))?\s*:", re.I)
_TOTAL: Final = re.compile(r"^\s*(Input|Output) \(total\):\s*(\d+) packets, (\d+|-) bytes", re.I)
_ERRORS: Final = re.compile(r"^\s*(Input|Output):\s*(\d+|-) (?:input|output) errors", re.I)
_LOGICAL: Final = re.compile(r"^\s*(Input|Output):\s*(\d+) packets, (\d+) bytes", re.I)
# 'UP', 'DOWN', 'Administratively DOWN', 'STP DOWN', 'DOWN ( Administratively )', 'UP(spoofing)'.
_STATE: Final = re.compile(r"^(?:ADMINISTRATIVELY\s+|STP\s+)?(UP|DOWN)\b", re.I)
_IP_STATS: Final = re.compile(r"^\s*IPv[46] traffic statistics", re.I)


class _Block:
    def __init__(self, name: str, state: str) -> None:
        self.name, self.state = name, state.upper()
        self.proto: str | None = None
        self.ip_stats = False  # inside 'IPv4 traffic statistics': not the interface's figures
        self.v: dict[str, int | None] = {}
        self.bps: dict[str, float] = {}

    def result(self) -> IfStatus:
        if not _STATE.match(self.state) or (self.proto is not None
                                            and not _STATE.match(self.proto)):
            raise ParseError(COMMAND, f"{self.name}: unexpected or truncated state "
                             f"{self.state[:30]!r} / {str(self.proto)[:30]!r}")
        up = self.state.startswith("UP") and (self.proto is None
                                                or self.proto.upper().startswith("UP"))
        v = self.v
        return IfStatus(
            name=self.name, up=up, admin_down="ADMINISTRATIVELY" in self.state,
            speed_mbps=v.get("speed"), in_bps=self.bps.get("in"), out_bps=self.bps.get("out"),
            in_errors=v.get("in_errors"), out_errors=v.get("out_errors"),
            in_octets=v.get("in_octets"), out_octets=v.get("out_octets"),
            in_packets=v.get("in_packets"), out_packets=v.get("out_packets"),
        )


def _line(b: _Block, line: str) -> None:
    if _IP_STATS.match(line):
        b.ip_stats = True
    elif (proto := _PROTO.match(line)) is not None:
        b.proto = proto.group(1)
    elif (speed := _SPEED.match(line)) is not None:
        b.v["speed"] = speed_mbps(speed.group(1))
    elif b.ip_stats:
        return
    elif _RATE_KEY.match(line):
        m = strict(COMMAND, line, _RATE)
        direction = "in" if m.group(1).lower() == "input" else "out"
        per_sec = m.group(3) if m.group(3) is not None else m.group(4)
        b.bps[direction] = to_int(COMMAND, per_sec) * 8.0
    elif (key := _COUNT_KEY.match(line)) is not None:
        d = "in" if key.group(1).lower() == "input" else "out"
        if key.group(2):
            m = strict(COMMAND, line, _TOTAL)
            b.v[f"{d}_packets"] = to_int(COMMAND, m.group(2))
            b.v[f"{d}_octets"] = opt_int(COMMAND, m.group(3))
        elif (err := _ERRORS.match(line)) is not None:
            b.v[f"{d}_errors"] = opt_int(COMMAND, err.group(2))
        else:
            m = strict(COMMAND, line, _LOGICAL)
            b.v.setdefault(f"{d}_packets", to_int(COMMAND, m.group(2)))
            b.v.setdefault(f"{d}_octets", to_int(COMMAND, m.group(3)))


def parse(text: str) -> list[IfStatus]:
    """Every interface block."""
    blocks: list[_Block] = []
    previous = ""  # the last non-empty line: a Comware 7 block's name
    before = 0  # non-empty lines before the first block: at most the first block's name
    for line in checked_lines(COMMAND, text):
        if (head := _HEAD5.match(line)) is not None:
            blocks.append(_Block(head.group(1), head.group(2)))
        elif (state := _STATE7.match(line)) is not None:
            name = _NAME.match(previous)
            if name is None:
                raise ParseError(COMMAND, "'Current state' without an interface name before it")
            blocks.append(_Block(name.group(1), state.group(1)))
        elif blocks:
            _line(blocks[-1], line)
        elif line.strip():
            before += 1
            if before > 1:
                raise ParseError(COMMAND, f"text before the first interface: {line[:80]!r}")
        if line.strip():
            previous = line
    if not blocks:
        raise ParseError(COMMAND, "no interface block ('Current state' line)")
    return [b.result() for b in blocks]
