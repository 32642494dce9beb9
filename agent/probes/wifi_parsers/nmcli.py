"""``nmcli -t -f IN-USE,SSID,BSSID,MODE,CHAN,FREQ,SIGNAL,SECURITY dev wifi list``.

Terse output separates fields with ':' and escapes ':' and '\\' inside values with a backslash
(so a BSSID reads ``31\\:23\\:03\\:1A\\:9F\\:1C``).  SIGNAL is NetworkManager's percentage,
converted to dBm with :func:`~agent.probes.wifi_parsers.base.nm_percent_to_dbm`.
"""

from __future__ import annotations

import re
from typing import Final

from agent.probes.wifi_parsers.base import (
    MAC_RE,
    Bss,
    WifiParseError,
    band_of_channel,
    band_of_freq,
    channel_of_freq,
    integer,
    nm_percent_to_dbm,
    normalize_mac,
    percent,
)

FIELDS: Final = ("IN-USE", "SSID", "BSSID", "MODE", "CHAN", "FREQ", "SIGNAL", "SECURITY")
_FREQ: Final = re.compile(r"^\s*([0-9]{3,5})")


def split_terse(line: str) -> list[str]:
    """One terse line into its values, unescaping '\\:' and '\\\\'."""
    values: list[str] = []
    current: list[str] = []
    chars = iter(line)
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == ":":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return values


def parse(text: str, fields: tuple[str, ...] = FIELDS) -> list[Bss]:
    """Every row; ``fields`` as given to ``-f`` (ACTIVE works in place of IN-USE)."""
    index = {name.upper(): i for i, name in enumerate(fields)}
    for required in ("SSID", "BSSID", "SIGNAL"):
        if required not in index:
            raise WifiParseError(f"fields must include {required}")
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        values = split_terse(line)
        if len(values) != len(fields):
            raise WifiParseError(f"line {number}: {len(values)} fields, expected {len(fields)}")
        row = {name: values[i] for name, i in index.items()}
        found.append(_bss(row, number))
    return found


def _bss(row: dict[str, str], number: int) -> Bss:
    bssid = row["BSSID"].strip()
    if not MAC_RE.match(bssid):
        raise WifiParseError(f"line {number}: not a BSSID: {bssid[:40]!r}")
    pct = percent(row["SIGNAL"], f"line {number} SIGNAL")
    freq = None
    if row.get("FREQ"):
        match = _FREQ.match(row["FREQ"])
        if match is None:
            raise WifiParseError(f"line {number}: bad FREQ: {row['FREQ'][:40]!r}")
        freq = int(match.group(1))
    channel = integer(row["CHAN"], f"line {number} CHAN") if row.get("CHAN") else None
    if channel is None and freq is not None:
        channel = channel_of_freq(freq)
    band = band_of_freq(freq) if freq is not None else None
    if band is None and channel is not None:
        band = band_of_channel(channel)
    in_use = row.get("IN-USE", row.get("ACTIVE", "")).strip().lower()
    return Bss(ssid=row["SSID"], bssid=normalize_mac(bssid), rssi_dbm=nm_percent_to_dbm(pct),
               channel=channel, freq_mhz=freq, band=band, connected=in_use in ("*", "yes"),
               signal_pct=pct)
