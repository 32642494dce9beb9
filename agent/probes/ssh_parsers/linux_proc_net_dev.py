"""Linux ``cat /proc/net/dev``: cumulative byte, packet and error counters of every interface.

Two header lines (``Inter-|   Receive ... |  Transmit``), then ``name: 16 numbers``: receive
bytes packets errs drop fifo frame compressed multicast, then transmit bytes packets errs drop
fifo colls carrier compressed.  No state, no speed, no rate: the probe derives rates from the
difference between two polls.
"""

from __future__ import annotations

from typing import Final

from agent.probes.ssh_parsers.model import IfStatus, ParseError, checked_lines, to_int

COMMAND: Final = "cat /proc/net/dev"


def parse(text: str) -> list[IfStatus]:
    """Every interface's counters."""
    lines = [line for line in checked_lines(COMMAND, text) if line.strip()]
    if len(lines) < 2 or "Receive" not in lines[0] or "Transmit" not in lines[0] \
            or "bytes" not in lines[1]:
        raise ParseError(COMMAND, "no 'Inter-|   Receive ... Transmit' header")
    result = []
    for line in lines[2:]:
        name, colon, numbers = line.partition(":")
        values = numbers.split()
        if not colon or not name.strip() or " " in name.strip() or len(values) != 16:
            raise ParseError(COMMAND, f"unexpected or truncated line: {line.strip()[:120]!r}")
        n = [to_int(COMMAND, v) for v in values]
        result.append(IfStatus(name=name.strip(), in_octets=n[0], in_packets=n[1],
                               in_errors=n[2], out_octets=n[8], out_packets=n[9],
                               out_errors=n[10]))
    return result
