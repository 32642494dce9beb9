"""``iw dev IF scan dump``: the kernel's cached scan results, one ``BSS`` block per radio."""

from __future__ import annotations

import re
from typing import Final

from agent.probes.wifi_parsers.base import (
    Bss,
    WifiParseError,
    band_of_freq,
    channel_of_freq,
    normalize_mac,
)

# Masked captures use "xx" for hidden MAC bytes; accepted so recorded output parses as is.
_BSS: Final = re.compile(r"^BSS ((?:[0-9A-Fa-fx]{2}:){5}[0-9A-Fa-fx]{2})\s*\(on [^)]*\)(.*)$")
_FREQ: Final = re.compile(r"^freq:\s*([0-9]+(?:\.[0-9]+)?)\s*$")
_SIGNAL: Final = re.compile(r"^signal:\s*(-?[0-9]+(?:\.[0-9]+)?)\s*dBm\s*$")
_DS_CHANNEL: Final = re.compile(r"^DS Parameter set: channel ([0-9]{1,3})\s*$")
_PRIMARY: Final = re.compile(r"^\* primary channel: ([0-9]{1,3})\s*$")
_ESCAPE: Final = re.compile(rb"\\x([0-9A-Fa-f]{2})")


def unescape_ssid(text: str) -> str:
    """iw prints non-printable SSID bytes (every byte of a Chinese name) as \\xNN."""
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    return raw.decode("utf-8", "replace")


def parse(text: str) -> list[Bss]:
    """Every BSS in the dump (empty output: none cached)."""
    found: list[Bss] = []
    block: dict[str, str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = _BSS.match(line)
        if match:
            if block is not None:
                found.append(_bss(block))
            block = {"bssid": match.group(1), "tail": match.group(2)}
            continue
        stripped = line.strip()
        if block is None:
            if stripped:
                raise WifiParseError(f"line {number}: expected 'BSS <mac>': {stripped[:60]!r}")
            continue
        _field(block, stripped, number)
    if block is not None:
        found.append(_bss(block))
    return found


def _field(block: dict[str, str], line: str, number: int) -> None:
    if line.startswith("freq:"):
        match = _FREQ.match(line)
        if match is None:
            raise WifiParseError(f"line {number}: bad freq: {line[:60]!r}")
        block["freq"] = match.group(1)
    elif line.startswith("signal:"):
        match = _SIGNAL.match(line)
        if match is None:
            raise WifiParseError(f"line {number}: bad signal: {line[:60]!r}")
        block["signal"] = match.group(1)
    elif line.startswith("SSID:") and "ssid" not in block:
        block["ssid"] = unescape_ssid(line[5:].strip())
    elif (match := _DS_CHANNEL.match(line) or _PRIMARY.match(line)) and "channel" not in block:
        block["channel"] = match.group(1)


def _bss(block: dict[str, str]) -> Bss:
    freq = round(float(block["freq"])) if "freq" in block else None
    channel = int(block["channel"]) if "channel" in block else None
    if channel is None and freq is not None:
        channel = channel_of_freq(freq)
    tail = block["tail"]
    return Bss(
        ssid=block.get("ssid", ""),
        bssid=normalize_mac(block["bssid"]),
        rssi_dbm=float(block["signal"]) if "signal" in block else None,
        channel=channel,
        freq_mhz=freq,
        band=band_of_freq(freq) if freq is not None else None,
        connected="associated" in tail or "joined" in tail,
    )
