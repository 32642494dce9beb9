"""Classroom Wi-Fi coverage: every BSSID of the school's SSIDs that this PC hears, with its dBm.

Methods: ``iw`` (``iw dev IF scan dump`` + ``iw dev IF link``), ``nmcli`` (NetworkManager's
cached list), ``netsh`` (Windows, any display language, GBK or UTF-8 bytes), ``sniff`` (beacons
on a monitor-mode interface, scapy) and ``auto`` (Windows: netsh; Linux: iw if installed, else
nmcli).  Commands run from PATH through an injected runner, so every parser is tested on
recorded output.  Parsers raise only ``WifiParseError``; the probe turns that, a radio that is
off and a failing command into one ProbeError naming the classroom and the command.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.probes.base import (
    TAG_FORBIDDEN_RE,
    ProbeError,
    ProbeSettingsBase,
    WallClockMs,
    wall_clock_ms,
)
from agent.probes.wifi_parsers import (
    beacons,
    iw_dev,
    iw_link,
    iw_scan,
    netsh_interfaces,
    netsh_networks,
    nmcli,
)
from agent.probes.wifi_parsers.base import Bss, WifiParseError, WifiRadioOffError, decode_output
from common.config import Duration
from common.wire import TAG_PATTERN, FieldValue, Sample

log = logging.getLogger(__name__)

Method = Literal["auto", "iw", "nmcli", "netsh", "sniff"]
Runner = Callable[[Sequence[str]], bytes]
Sniffer = Callable[[str, float], Iterable[Any]]


class CommandError(Exception):
    """A scan command that could not run or failed without output."""


class WifiSettings(ProbeSettingsBase):
    """``type: wifi``."""

    type: Literal["wifi"]
    interval: Duration = 300.0
    classroom: str = Field(pattern=TAG_PATTERN)
    method: Method = "auto"
    ssids: list[str] = Field(min_length=1)
    interface: str | None = Field(default=None, min_length=1)
    command_timeout: Duration = 30.0
    sniff_duration: Duration = 5.0

    @field_validator("ssids")
    @classmethod
    def _ssids(cls, value: list[str]) -> list[str]:
        for ssid in value:
            # An SSID is at most 32 bytes; backslashes and control characters cannot be tags.
            if not 0 < len(ssid.encode("utf-8")) <= 32 or TAG_FORBIDDEN_RE.search(ssid):
                raise ValueError(f"{ssid!r}: an SSID is 1-32 bytes, no backslash or control")
        return value

    @model_validator(mode="after")
    def _sniff_needs_interface(self) -> WifiSettings:
        if self.method == "sniff" and self.interface is None:
            raise ValueError("interface: method sniff needs a monitor-mode interface")
        return self

    def build(self) -> WifiProbe:
        """The probe running the real commands."""
        timeout = self.command_timeout
        return WifiProbe(self, WifiSources(
            run=lambda argv: run_command(argv, timeout), which=shutil.which,
            platform=sys.platform, oem_codepage=windows_oem_codepage(), sniff=beacons.sniff,
        ))


@dataclass(frozen=True)
class WifiSources:
    """Where the probe reads from: commands, PATH look-up, the OS, the sniffer, the clock."""

    run: Runner
    which: Callable[[str], str | None]
    platform: str
    oem_codepage: str | None = None
    sniff: Sniffer = beacons.sniff
    now_ms: WallClockMs = wall_clock_ms


def run_command(argv: Sequence[str], timeout: float) -> bytes:
    """Run a command from PATH; its stdout (a failure with no stdout is a CommandError)."""
    windows = sys.platform.startswith("win")
    # English messages from nmcli/iw; netsh follows the Windows display language regardless.
    env = None if windows else {**os.environ, "LC_ALL": "C.UTF-8"}
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if windows else 0
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout, env=env,
                              creationflags=flags, check=False)
    except FileNotFoundError:
        raise CommandError(f"{argv[0]}: not found in PATH") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"{' '.join(argv)}: no result within {timeout:g}s") from None
    except OSError as exc:
        raise CommandError(f"{argv[0]}: {exc.strerror or exc}") from None
    # netsh reports "radio off" on stdout with a failure code: the parser explains it better.
    if done.returncode != 0 and not done.stdout.strip():
        message = decode_output(done.stderr).strip().splitlines()
        reason = message[0][:200] if message else "no output"
        raise CommandError(f"{' '.join(argv)}: exit {done.returncode}: {reason}")
    return done.stdout


def windows_oem_codepage() -> str | None:
    """The console code page netsh writes in when redirected (None off Windows)."""
    if not sys.platform.startswith("win"):
        return None
    import ctypes

    return f"cp{ctypes.windll.kernel32.GetOEMCP()}"


class WifiProbe:
    """One ``wifi`` sample per BSSID of the configured SSIDs."""

    def __init__(self, settings: WifiSettings, sources: WifiSources) -> None:
        self.settings = settings
        self.sources = sources
        self._method: str | None = None
        self._iw_interface: str | None = settings.interface

    def method(self) -> str:
        """The method in use (``auto`` resolved on first use: it looks at PATH)."""
        if self._method is None:
            wanted = self.settings.method
            if wanted == "auto":
                if self.sources.platform.startswith("win"):
                    wanted = "netsh"
                elif self.sources.which("iw"):
                    wanted = "iw"
                elif self.sources.which("nmcli"):
                    wanted = "nmcli"
                else:
                    raise ProbeError(f"wifi {self.settings.classroom}: neither iw nor nmcli "
                                     "in PATH (install iw or NetworkManager)")
            self._method = wanted
        return self._method

    def collect(self) -> list[Sample]:
        """Scan (or read the OS's last scan) and report the configured SSIDs."""
        method = self.method()
        scan = {"iw": self._iw, "nmcli": self._nmcli, "netsh": self._netsh,
                "sniff": self._sniff}[method]
        where = f"wifi {self.settings.classroom} ({method})"
        try:
            found = scan()
        except CommandError as exc:
            raise ProbeError(f"{where}: {exc}") from None
        except WifiRadioOffError as exc:
            raise ProbeError(f"{where}: wireless interface is powered down: {exc}") from None
        except WifiParseError as exc:
            raise ProbeError(f"{where}: output not understood: {exc}") from None
        return self._samples(found)

    def _text(self, argv: list[str]) -> str:
        return decode_output(self.sources.run(argv), self.sources.oem_codepage)

    def _iw(self) -> list[Bss]:
        if self._iw_interface is None:
            managed = [name for name, kind in iw_dev.parse(self._text(["iw", "dev"]))
                       if kind in ("managed", "unknown")]
            if not managed:
                raise CommandError("iw dev: no wireless interface")
            self._iw_interface = managed[0]
        iface = self._iw_interface
        found = iw_scan.parse(self._text(["iw", "dev", iface, "scan", "dump"]))
        link = iw_link.parse(self._text(["iw", "dev", iface, "link"]))
        if link is None:
            return found
        return [b if b.bssid != link.bssid else _connected(b) for b in found]

    def _nmcli(self) -> list[Bss]:
        argv = ["nmcli", "-t", "-f", ",".join(nmcli.FIELDS), "dev", "wifi", "list"]
        if self.settings.interface:
            argv += ["ifname", self.settings.interface]
        return nmcli.parse(self._text(argv))

    def _netsh(self) -> list[Bss]:
        argv = ["netsh", "wlan", "show", "networks", "mode=bssid"]
        if self.settings.interface:
            argv.append(f"interface={self.settings.interface}")
        found = netsh_networks.parse(self._text(argv)).bss
        try:
            interfaces = netsh_interfaces.parse(self._text(["netsh", "wlan", "show",
                                                            "interfaces"]))
        except (CommandError, WifiParseError) as exc:
            # The scan is what matters; without this only the connected flag is unknown.
            log.warning("wifi %s: netsh wlan show interfaces: %s", self.settings.classroom, exc)
            return found
        on = {i.bssid for i in interfaces if i.bssid is not None}
        return [_connected(b) if b.bssid in on else b for b in found]

    def _sniff(self) -> list[Bss]:
        iface = self.settings.interface
        if iface is None:  # the settings refuse this; kept for a probe built by hand
            raise CommandError("sniff needs a monitor-mode interface")
        try:
            packets = self.sources.sniff(iface, self.settings.sniff_duration)
        except OSError as exc:
            raise CommandError(f"sniff on {iface}: {exc}") from None
        return beacons.parse(packets)

    def _samples(self, found: list[Bss]) -> list[Sample]:
        wanted = set(self.settings.ssids)
        best: dict[str, Bss] = {}
        for bss in found:
            if bss.ssid not in wanted:
                continue
            # The same BSSID twice (two interfaces, a stale cache entry): keep the strongest.
            old = best.get(bss.bssid)
            if old is None or (bss.rssi_dbm or -999.0) > (old.rssi_dbm or -999.0):
                best[bss.bssid] = _connected(bss) if old and old.connected else bss
            elif bss.connected:
                best[bss.bssid] = _connected(old)
        ts_ms = self.sources.now_ms()
        return [_sample(self.settings.classroom, b, ts_ms)
                for b in sorted(best.values(), key=lambda b: (b.ssid, b.bssid))]


def _connected(bss: Bss) -> Bss:
    return replace(bss, connected=True)


def _sample(classroom: str, bss: Bss, ts_ms: int) -> Sample:
    tags = {"classroom": classroom, "ssid": bss.ssid, "bssid": bss.bssid}
    if bss.band:
        tags["band"] = bss.band
    fields: dict[str, FieldValue] = {"connected": bss.connected}
    if bss.rssi_dbm is not None:
        fields["rssi_dbm"] = float(bss.rssi_dbm)
    if bss.channel is not None:
        fields["channel"] = bss.channel
    return Sample("wifi", ts_ms, tags, fields)
