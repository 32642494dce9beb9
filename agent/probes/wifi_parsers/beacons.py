"""802.11 beacons captured in monitor mode (scapy): SSID, BSSID, channel and dBm per radio.

scapy is imported inside the functions only: it costs ~130 MB and most agents never sniff.
Signal is RadioTap's dBm_AntSignal; the channel is the DS Parameter Set element (2.4 GHz), else
derived from RadioTap's channel frequency.  Each BSSID's rssi is the median over its beacons.
"""

from __future__ import annotations

import statistics
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.probes.wifi_parsers.base import (
    Bss,
    band_of_channel,
    band_of_freq,
    channel_of_freq,
    normalize_mac,
)

# What scapy raises on a frame it dissected into something unexpected.
_BAD_FRAME = (AttributeError, IndexError, KeyError, TypeError, ValueError, struct.error)


@dataclass
class _Seen:
    ssid: str
    channel: int | None
    freq: int | None
    rssi: list[float] = field(default_factory=list)


def parse(packets: Iterable[Any]) -> list[Bss]:
    """One Bss per BSSID that sent a beacon; other frames and broken ones are skipped."""
    from scapy.layers.dot11 import Dot11, Dot11Beacon, Dot11Elt, RadioTap

    seen: dict[str, _Seen] = {}
    for pkt in packets:
        try:
            if not pkt.haslayer(Dot11Beacon) or not pkt.haslayer(Dot11):
                continue
            bssid = pkt[Dot11].addr3
            if not isinstance(bssid, str) or len(bssid) != 17:
                continue
            radiotap = pkt[RadioTap] if pkt.haslayer(RadioTap) else None
            rssi = getattr(radiotap, "dBm_AntSignal", None)
            freq = getattr(radiotap, "ChannelFrequency", None)
            ssid, channel = _elements(pkt.getlayer(Dot11Elt), Dot11Elt)
        except _BAD_FRAME:
            continue
        entry = seen.setdefault(normalize_mac(bssid), _Seen(ssid, channel,
                                                            freq if freq else None))
        if isinstance(rssi, int | float) and -127 <= rssi <= 0:
            entry.rssi.append(float(rssi))
    return [_bss(bssid, entry) for bssid, entry in sorted(seen.items())]


def _elements(elt: Any, elt_class: Any) -> tuple[str, int | None]:
    ssid, channel = "", None
    found_ssid = False
    while elt is not None:
        info = bytes(elt.info or b"")
        if elt.ID == 0 and not found_ssid:
            ssid, found_ssid = info.decode("utf-8", "replace"), True
        elif elt.ID == 3 and len(info) == 1 and channel is None:
            channel = info[0]
        elt = elt.payload.getlayer(elt_class)
    return ssid, channel


def _bss(bssid: str, entry: _Seen) -> Bss:
    freq = int(entry.freq) if isinstance(entry.freq, int) else None
    channel = entry.channel or (channel_of_freq(freq) if freq else None)
    band = band_of_freq(freq) if freq else None
    if band is None and channel is not None:
        band = band_of_channel(channel)
    rssi = round(statistics.median(entry.rssi), 1) if entry.rssi else None
    return Bss(ssid=entry.ssid, bssid=bssid, rssi_dbm=rssi, channel=channel, freq_mhz=freq,
               band=band)


def sniff(interface: str, seconds: float) -> list[Any]:
    """Beacons heard on a monitor-mode interface for ``seconds`` (needs root or CAP_NET_RAW)."""
    from scapy.layers.dot11 import Dot11Beacon
    from scapy.sendrecv import sniff as scapy_sniff

    return list(scapy_sniff(iface=interface, timeout=seconds, store=True,
                            lfilter=lambda p: p.haslayer(Dot11Beacon)))
