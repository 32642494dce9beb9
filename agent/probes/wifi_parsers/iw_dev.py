"""``iw dev``: the wireless interfaces and their types (to find one when none is configured)."""

from __future__ import annotations

import re
from typing import Final

from agent.probes.wifi_parsers.base import WifiParseError

_PHY: Final = re.compile(r"^phy#[0-9]+$")
_INTERFACE: Final = re.compile(r"^Interface (\S+)$")
_TYPE: Final = re.compile(r"^type (\S+)$")


def parse(text: str) -> list[tuple[str, str]]:
    """(interface, type) pairs in order; empty output: no wireless hardware."""
    found: list[tuple[str, str]] = []
    seen_phy = False
    current: int | None = None  # index in found of the interface whose lines follow
    for line in (raw.strip() for raw in text.splitlines()):
        if _PHY.match(line):
            seen_phy, current = True, None
        elif not seen_phy:
            if line:
                raise WifiParseError(f"expected 'phy#N': {line[:60]!r}")
        elif m := _INTERFACE.match(line):
            found.append((m.group(1), "unknown"))
            current = len(found) - 1
        elif line.startswith("Unnamed"):  # a P2P device without a netdev: not usable
            current = None
        elif (m := _TYPE.match(line)) and current is not None:
            found[current] = (found[current][0], m.group(1))
    return found
