"""``netsh wlan show networks mode=bssid`` in any display language (English, Dutch, Chinese...).

Only the structure is relied on, not the words: ``SSID n : name`` and ``BSSID n : mac`` are never
translated, the signal is the one value ending in '%', and the channel and band labels are looked
up in small per-language tables.  Signal is Windows' percentage, converted with
:func:`~agent.probes.wifi_parsers.base.windows_percent_to_dbm`.  Without ``mode=bssid`` netsh
lists SSIDs only: those give no entries.  An interface whose radio is off prints one sentence
instead of networks: that raises :class:`WifiRadioOffError` with the sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from agent.probes.wifi_parsers.base import (
    Bss,
    WifiParseError,
    WifiRadioOffError,
    band_of_channel,
    integer,
    normalize_mac,
    parse_band_label,
    percent,
    windows_percent_to_dbm,
)

CHANNEL_LABELS: Final = frozenset({
    "channel", "kanaal", "kanal", "canal", "canale", "信道", "频道", "通道", "頻道", "チャネル",
    "채널",
})
BAND_LABELS: Final = frozenset({
    "band", "banda", "bande", "frequenzband", "波段", "频带", "频段", "頻帶", "頻段", "帯域",
    "대역",
})
_SSID: Final = re.compile(r"^SSID ([0-9]+)\s*:(.*)$")
_BSSID: Final = re.compile(
    r"^\s+BSSID ([0-9]+)\s*:\s*([0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5})\s*$")
_KV: Final = re.compile(r"^(\s*)([^:\s](?:[^:]*[^:\s])?)\s*:\s?(.*)$")
_PCT: Final = re.compile(r"^[0-9]{1,3}\s*%$")


@dataclass
class NetshScan:
    """Interfaces named in the headers, SSIDs listed, and every BSSID with its radio."""

    interfaces: list[str] = field(default_factory=list)
    ssids: list[str] = field(default_factory=list)
    bss: list[Bss] = field(default_factory=list)


def parse(text: str) -> NetshScan:
    """The scan; raises WifiRadioOffError or WifiParseError."""
    scan = NetshScan()
    ssid: str | None = None
    current: dict[str, str] | None = None
    sentences: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if m := _SSID.match(line):
            _flush(scan, ssid, current)
            ssid, current = m.group(2).strip(), None
            scan.ssids.append(ssid)
        elif m := _BSSID.match(line):
            if ssid is None:
                raise WifiParseError(f"line {number}: BSSID outside an SSID block")
            _flush(scan, ssid, current)
            current = {"bssid": m.group(2)}
        elif m := _KV.match(line):
            indent, label, value = m.group(1), m.group(2).strip().lower(), m.group(3).strip()
            if not indent:  # "Interface name : Wi-Fi" starts an interface section
                _flush(scan, ssid, current)
                ssid, current = None, None
                scan.interfaces.append(value)
            elif current is not None:
                _radio_line(current, label, value, number)
        else:
            sentences.append(line.strip())
    _flush(scan, ssid, current)
    if not scan.ssids:
        _no_networks(scan, sentences)
    return scan


def _radio_line(current: dict[str, str], label: str, value: str, number: int) -> None:
    if _PCT.match(value) and "signal" not in current:
        current["signal"] = str(percent(value, f"line {number} signal"))
    elif label in CHANNEL_LABELS:
        current["channel"] = str(integer(value, f"line {number} channel"))
    elif label in BAND_LABELS:
        band = parse_band_label(value)
        if band is not None:
            current["band"] = band


def _flush(scan: NetshScan, ssid: str | None, current: dict[str, str] | None) -> None:
    if ssid is None or current is None:
        return
    pct = int(current["signal"]) if "signal" in current else None
    channel = int(current["channel"]) if "channel" in current else None
    band = current.get("band") or (band_of_channel(channel) if channel is not None else None)
    scan.bss.append(Bss(
        ssid=ssid, bssid=normalize_mac(current["bssid"]),
        rssi_dbm=windows_percent_to_dbm(pct) if pct is not None else None,
        channel=channel, freq_mhz=None, band=band, signal_pct=pct,
    ))


def _no_networks(scan: NetshScan, sentences: list[str]) -> None:
    # "There are 0 networks currently visible." has a digit; "... is powered down ..." has not.
    wordy = [s for s in sentences if not any(c.isdigit() for c in s)]
    if wordy and scan.interfaces:
        raise WifiRadioOffError(wordy[0][:200])
    if wordy:
        raise WifiParseError(wordy[0][:200])
    if not scan.interfaces:
        raise WifiParseError("no 'Interface name' header and no networks")
