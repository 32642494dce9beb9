"""``netsh wlan show interfaces`` in any display language: which BSSID each interface is on.

A connected interface shows a ``BSSID`` (Windows 11: ``AP BSSID``) line; a disconnected one has
none.  The physical address is a MAC too, so only labels ending in "bssid" count.  Interfaces
start at their name line (label looked up per language; one interface if none matches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from agent.probes.wifi_parsers.base import MAC_RE, WifiParseError, normalize_mac, percent
from agent.probes.wifi_parsers.netsh_networks import CHANNEL_LABELS

NAME_LABELS: Final = frozenset({"name", "naam", "名称", "名稱", "nom", "nombre", "名前", "이름"})
_KV: Final = re.compile(r"^\s*([^:\s](?:[^:]*[^:\s])?)\s*:\s?(.*)$")
_PCT: Final = re.compile(r"^[0-9]{1,3}\s*%$")


@dataclass
class NetshInterface:
    """One interface; ``bssid`` is None when it is not connected."""

    name: str | None = None
    ssid: str | None = None
    bssid: str | None = None
    signal_pct: int | None = None
    channel: int | None = None


def parse(text: str) -> list[NetshInterface]:
    """Every interface listed."""
    found: list[NetshInterface] = []
    current: NetshInterface | None = None
    sentences = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _KV.match(line)
        if match is None:
            if line.strip():
                sentences.append(line.strip())
            continue
        label, value = match.group(1).strip().lower(), match.group(2).strip()
        if not value:  # "There is 1 interface on the system:" and other headings
            continue
        if label in NAME_LABELS or current is None:
            current = NetshInterface()
            found.append(current)
        if label in NAME_LABELS:
            current.name = value
        elif label == "ssid":
            current.ssid = value
        elif label.endswith("bssid") and MAC_RE.match(value):
            current.bssid = normalize_mac(value)
        elif _PCT.match(value):
            current.signal_pct = percent(value, f"line {number} signal")
        elif label in CHANNEL_LABELS and value.isascii() and value.isdigit():
            current.channel = int(value)
    if not found:
        raise WifiParseError(sentences[0][:200] if sentences else "empty output")
    return found
