"""``iw dev IF link``: the BSS the interface is associated with, if any."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from agent.probes.wifi_parsers.base import WifiParseError, normalize_mac
from agent.probes.wifi_parsers.iw_scan import unescape_ssid

_CONNECTED: Final = re.compile(r"^Connected to ((?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2})\b")
_SIGNAL: Final = re.compile(r"^signal:\s*(-?[0-9]+)\s*dBm")
_FREQ: Final = re.compile(r"^freq:\s*([0-9]+(?:\.[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Link:
    """The association: BSSID, and what iw says about it."""

    bssid: str
    ssid: str | None
    freq_mhz: int | None
    signal_dbm: int | None


def parse(text: str) -> Link | None:
    """The link, or None for 'Not connected.'."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise WifiParseError("empty output")
    if lines[0].lower().startswith("not connected"):
        return None
    match = _CONNECTED.match(lines[0])
    if match is None:
        raise WifiParseError(f"expected 'Connected to <mac>': {lines[0][:60]!r}")
    ssid = freq = signal = None
    for line in lines[1:]:
        if line.startswith("SSID:"):
            ssid = unescape_ssid(line[5:].strip())
        elif m := _FREQ.match(line):
            freq = round(float(m.group(1)))
        elif m := _SIGNAL.match(line):
            signal = int(m.group(1))
    return Link(normalize_mac(match.group(1)), ssid, freq, signal)
