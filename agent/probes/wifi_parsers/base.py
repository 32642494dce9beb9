"""What every Wi-Fi parser returns and raises, byte decoding, and radio arithmetic.

Signal conversions (both tools report a percentage, not dBm):

- NetworkManager (nmcli SIGNAL): ``nm_wifi_utils_level_to_quality()`` in NetworkManager's
  src/core/nm-core-utils.c clamps dBm to [-100, -40] and maps it linearly onto 0..100
  (``100 - (int)(100 * (-40 - dBm) / 60)``).  Inverse used here: ``dBm = 0.6 * pct - 100``
  (100 % -> -40 dBm or stronger, 0 % -> -100 dBm or weaker; the truncation loses < 0.6 dB).
- Windows (netsh Signal): WLAN_ASSOCIATION_ATTRIBUTES.wlanSignalQuality is documented as
  "0 implies -100 dBm, 100 implies -50 dBm, linear in between": ``dBm = pct / 2 - 100``.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Final

MAC_RE: Final = re.compile(r"^[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}$")
BANDS: Final = ("2.4GHz", "5GHz", "6GHz")


class WifiParseError(ValueError):
    """Output that is not what the command prints; the only error a parser raises."""


class WifiRadioOffError(WifiParseError):
    """The output says the wireless interface is powered down (radio off)."""


@dataclass(frozen=True)
class Bss:
    """One access point radio (BSSID) as one scan saw it."""

    ssid: str
    bssid: str  # lowercase, colon separated
    rssi_dbm: float | None
    channel: int | None
    freq_mhz: int | None
    band: str | None  # 2.4GHz, 5GHz, 6GHz
    connected: bool = False
    signal_pct: int | None = None  # what the tool reported, when it reports a percentage


def decode_output(raw: bytes, oem_codepage: str | None = None) -> str:
    """Command output as text: UTF-8, else the OEM code page, else GBK (cp936).

    The OEM code page (what a Windows console program writes when redirected) goes before GBK
    because it is the one the machine actually uses; on Simplified Chinese Windows it is cp936,
    i.e. GBK, anyway.  Whatever still fails is decoded as UTF-8 with replacement characters,
    so the ASCII labels parse and only the broken name shows U+FFFD.
    """
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    for encoding in ("utf-8", oem_codepage, "gbk"):
        if encoding is None:
            continue
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("utf-8", "replace")


def normalize_mac(value: str) -> str:
    """aa:bb:cc:dd:ee:ff, lowercase, colons."""
    return value.strip().lower().replace("-", ":")


def band_of_freq(freq_mhz: float) -> str | None:
    """Band of a centre frequency in MHz."""
    if 2400 <= freq_mhz < 2500:
        return "2.4GHz"
    if 5150 <= freq_mhz < 5925:
        return "5GHz"
    if 5925 <= freq_mhz <= 7125:
        return "6GHz"
    return None


def channel_of_freq(freq_mhz: int) -> int | None:
    """IEEE channel number of a 2.4, 5 or 6 GHz centre frequency."""
    if freq_mhz == 2484:
        return 14
    if 2412 <= freq_mhz <= 2472:
        return (freq_mhz - 2407) // 5
    if freq_mhz == 5935:
        return 2
    if 5950 < freq_mhz <= 7125:
        return (freq_mhz - 5950) // 5
    if 5150 <= freq_mhz < 5925:
        return (freq_mhz - 5000) // 5
    return None


def band_of_channel(channel: int) -> str | None:
    """Band of a channel number when nothing else tells (6 GHz reuses 1..233: not guessed)."""
    if 1 <= channel <= 14:
        return "2.4GHz"
    if 32 <= channel <= 177:
        return "5GHz"
    return None


def parse_band_label(value: str) -> str | None:
    """'2.4 GHz', '5 GHz', '6 GHz' (netsh's Band line) as a band name."""
    compact = value.replace(" ", "").replace(",", ".").lower()
    for band in BANDS:
        if compact.startswith(band.lower()):
            return band
    return None


def nm_percent_to_dbm(pct: int) -> float:
    """Inverse of NetworkManager's dBm -> percent mapping (see the module docstring)."""
    return round(0.6 * pct - 100.0, 1)


def windows_percent_to_dbm(pct: int) -> float:
    """Windows signal quality -> dBm (see the module docstring)."""
    return pct / 2 - 100.0


def percent(value: str, what: str) -> int:
    """An integer 0..100 or WifiParseError."""
    text = value.strip().rstrip("%").strip()
    if not text.isascii() or not text.isdigit() or int(text) > 100:
        raise WifiParseError(f"{what}: not a percentage: {value[:40]!r}")
    return int(text)


def integer(value: str, what: str) -> int:
    """A small non-negative integer or WifiParseError."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise WifiParseError(f"{what}: not a number: {value[:40]!r}")
    return int(text)
