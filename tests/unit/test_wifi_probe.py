"""The wifi probe with an injected command runner (recorded output) and sniffed pcap files."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.probes.base import ProbeError
from agent.probes.wifi import CommandError, WifiProbe, WifiSettings, WifiSources
from agent.probes.wifi_parsers import beacons
from common.wire import FieldValue, Sample, check_samples

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wifi"
NOW_MS = 1_763_890_000_000


def recorded(command: str, case: str) -> bytes:
    """Raw output of a recorded case."""
    return (FIXTURES / command / case / "output.txt").read_bytes()


class Commands:
    """A runner answering argv from a table; records what ran."""

    def __init__(self, table: dict[tuple[str, ...], bytes | Exception]) -> None:
        self.table = table
        self.ran: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> bytes:
        """Run one command."""
        key = tuple(argv)
        self.ran.append(key)
        answer = self.table.get(key, CommandError(f"{argv[0]}: not in the test table"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def probe(table: dict[tuple[str, ...], bytes | Exception], *, platform: str = "linux",
          path: Iterable[str] = ("iw", "nmcli"), **settings: Any) -> tuple[WifiProbe, Commands]:
    """A probe on a command table."""
    commands = Commands(table)
    s = WifiSettings.model_validate({"type": "wifi", "classroom": "301", **settings})
    found = set(path)
    sources = WifiSources(run=commands, which=lambda name: f"/usr/bin/{name}" if name in found
                          else None, platform=platform, now_ms=lambda: NOW_MS)
    return WifiProbe(s, sources), commands


def view(samples: list[Sample]) -> list[tuple[dict[str, str], dict[str, FieldValue]]]:
    """Tags and fields, after checking the samples are valid on the wire."""
    check_samples(samples)
    assert all(s.kind == "wifi" and s.ts_ms == NOW_MS for s in samples)
    return [(s.tags, s.fields) for s in samples]


# Constructed (no recorded iw link for the recorded scan's APs): associated to the Cisco1250.
IW_LINK = (b"Connected to d0:d0:fd:69:ca:70 (on wlan0)\n\tSSID: Cisco1250\n\tfreq: 2462\n"
           b"\tsignal: -70 dBm\n")
IW_DEV = b"phy#0\n\tInterface wlan0\n\t\tifindex 3\n\t\ttype managed\n"


def test_iw_scan_dump_and_link() -> None:
    """iw: interface found with 'iw dev', connected BSS from 'iw dev IF link'."""
    p, commands = probe({
        ("iw", "dev"): IW_DEV,
        ("iw", "dev", "wlan0", "scan", "dump"): recorded("iw_scan_dump", "centos77_cisco_aps"),
        ("iw", "dev", "wlan0", "link"): IW_LINK,
    }, method="iw", ssids=["Cisco1240", "Cisco1250"])
    assert view(p.collect()) == [
        ({"classroom": "301", "ssid": "Cisco1240", "bssid": "00:19:a9:cd:c6:80",
          "band": "2.4GHz"}, {"connected": False, "rssi_dbm": -45.0, "channel": 1}),
        ({"classroom": "301", "ssid": "Cisco1250", "bssid": "d0:d0:fd:69:ca:70",
          "band": "2.4GHz"}, {"connected": True, "rssi_dbm": -70.0, "channel": 11}),
    ]
    p.collect()  # the interface is looked up once
    assert commands.ran.count(("iw", "dev")) == 1


def test_iw_configured_interface_and_not_connected() -> None:
    """A configured interface is used as is; 'Not connected.' leaves every BSS unconnected."""
    p, commands = probe({
        ("iw", "dev", "wlp2s0", "scan", "dump"): recorded("iw_scan_dump",
                                                          "openwrt_wlan0-1_tabs"),
        ("iw", "dev", "wlp2s0", "link"): b"Not connected.\n",
    }, method="iw", interface="wlp2s0", ssids=["Troubleshooting"])
    assert view(p.collect()) == [
        ({"classroom": "301", "ssid": "Troubleshooting", "bssid": "xx:xx:xx:xx:3e:41",
          "band": "2.4GHz"}, {"connected": False, "rssi_dbm": -54.0, "channel": 1})]
    assert ("iw", "dev") not in commands.ran


def test_iw_no_wireless_interface() -> None:
    """No managed interface: a ProbeError saying so."""
    p, _ = probe({("iw", "dev"): b""}, method="iw", ssids=["x"])
    with pytest.raises(ProbeError, match=r"wifi 301 \(iw\): iw dev: no wireless interface"):
        p.collect()


NMCLI_ARGV = ("nmcli", "-t", "-f", "IN-USE,SSID,BSSID,MODE,CHAN,FREQ,SIGNAL,SECURITY", "dev",
              "wifi", "list")
# Constructed for the probe's own field list (the recorded capture has other fields).
NMCLI = (b" :School-WiFi:AA\\:BB\\:CC\\:00\\:00\\:01:Infra:1:2412 MHz:64:WPA2\n"
         b"*:School-WiFi:AA\\:BB\\:CC\\:00\\:00\\:02:Infra:149:5745 MHz:90:WPA2\n"
         b" :School-WiFi:AA\\:BB\\:CC\\:00\\:00\\:01:Infra:1:2412 MHz:20:WPA2\n"
         b" :Guest:AA\\:BB\\:CC\\:00\\:00\\:03:Infra:6:2437 MHz:99:\n"
         b" ::AA\\:BB\\:CC\\:00\\:00\\:04:Infra:6:2437 MHz:99:WPA2\n")


def test_nmcli_configured_ssids_dedup_and_conversion() -> None:
    """Only configured SSIDs; a BSSID listed twice keeps its strongest; percent -> dBm."""
    p, _ = probe({NMCLI_ARGV: NMCLI}, method="nmcli", ssids=["School-WiFi"])
    assert view(p.collect()) == [
        ({"classroom": "301", "ssid": "School-WiFi", "bssid": "aa:bb:cc:00:00:01",
          "band": "2.4GHz"}, {"connected": False, "rssi_dbm": -61.6, "channel": 1}),
        ({"classroom": "301", "ssid": "School-WiFi", "bssid": "aa:bb:cc:00:00:02",
          "band": "5GHz"}, {"connected": True, "rssi_dbm": -46.0, "channel": 149}),
    ]


def test_nmcli_interface_and_recorded_other_fields_is_clear_error() -> None:
    """ifname is passed on; output with other columns is refused with a clear message."""
    argv = (*NMCLI_ARGV, "ifname", "wlan1")
    p, _ = probe({argv: recorded("nmcli_dev_wifi_list",
                                 "active_ssid_bssid_mode_chan_freq_signal_security_wpa_rsn")},
                 method="nmcli", interface="wlan1", ssids=["NERMNET"])
    with pytest.raises(ProbeError, match=r"nmcli\): output not understood: line 1: 10 fields"):
        p.collect()


NETSH_NETWORKS = ("netsh", "wlan", "show", "networks", "mode=bssid")
NETSH_INTERFACES = ("netsh", "wlan", "show", "interfaces")
# Constructed English 'show interfaces' of a PC on one of the recorded Dutch BSSIDs.
NETSH_CONNECTED = b"""
There is 1 interface on the system:

    Name                   : Wi-Fi
    Description            : Intel(R) Wi-Fi 6 AX201 160MHz
    GUID                   : 00000000-1111-2222-3333-444444444444
    Physical address       : 5c:63:bf:27:3f:b6
    State                  : connected
    SSID                   : iConnect
    BSSID                  : 00:25:45:35:06:c2
    Network type           : Infrastructure
    Radio type             : 802.11n
    Channel                : 6
    Signal                 : 86%
    Profile                : iConnect
"""


def test_netsh_dutch_scan_connected_from_interfaces() -> None:
    """The recorded Dutch scan: every iConnect BSSID, the connected one flagged."""
    p, _ = probe({NETSH_NETWORKS: recorded("netsh_show_networks", "nl_dutch_2_ssids_37_bssids"),
                  NETSH_INTERFACES: NETSH_CONNECTED}, platform="win32", ssids=["iConnect"])
    result = view(p.collect())
    assert p.method() == "netsh"
    assert len(result) == 19
    connected = [(t, f) for t, f in result if f["connected"]]
    assert connected == [({"classroom": "301", "ssid": "iConnect", "bssid": "00:25:45:35:06:c2",
                           "band": "2.4GHz"},
                          {"connected": True, "rssi_dbm": -57.0, "channel": 6})]
    assert {t["band"] for t, _ in result} == {"2.4GHz", "5GHz"}


def test_netsh_gbk_chinese_interfaces_disconnected() -> None:
    """GBK bytes of the zh-CN capture: nothing connected, scan still reported."""
    zh = recorded("netsh_show_interfaces", "zh_cn_disconnected_usb_11g")
    p, _ = probe({NETSH_NETWORKS: recorded("netsh_show_networks", "en_10_ssids_anonymized"),
                  NETSH_INTERFACES: zh.decode("utf-8").encode("gbk")},
                 platform="win32", method="netsh", ssids=["SSID number 3", "SSID number 10"])
    assert view(p.collect()) == [
        ({"classroom": "301", "ssid": "SSID number 10", "bssid": "14:ab:82:ab:27:ab",
          "band": "2.4GHz"}, {"connected": False, "rssi_dbm": -65.0, "channel": 1}),
        ({"classroom": "301", "ssid": "SSID number 3", "bssid": "b0:ab:b9:ab:7d:ab",
          "band": "5GHz"}, {"connected": False, "rssi_dbm": -60.0, "channel": 153}),
    ]


def test_netsh_radio_off_is_clear_error() -> None:
    """The recorded 'powered down' output: a ProbeError saying the radio is off."""
    p, _ = probe({NETSH_NETWORKS: recorded("netsh_show_networks", "en_interface_powered_down")},
                 platform="win32", ssids=["School-WiFi"])
    with pytest.raises(ProbeError, match=r"wifi 301 \(netsh\): wireless interface is powered "
                                         r"down: The wireless local area network interface"):
        p.collect()


def test_netsh_interface_arg_and_interfaces_failure_tolerated(
        caplog: pytest.LogCaptureFixture) -> None:
    """interface= is passed; a failing 'show interfaces' only loses the connected flag."""
    p, commands = probe({
        (*NETSH_NETWORKS, "interface=Wi-Fi 2"): recorded("netsh_show_networks",
                                                         "en_10_ssids_anonymized"),
        NETSH_INTERFACES: CommandError("netsh: exit 1: boom"),
    }, platform="win32", ssids=["SSID number 5"], interface="Wi-Fi 2")
    with caplog.at_level(logging.WARNING):
        ((_tags, fields),) = view(p.collect())
    assert fields == {"connected": False, "rssi_dbm": -56.5, "channel": 11}
    assert "boom" in caplog.text and commands.ran[0][-1] == "interface=Wi-Fi 2"


def test_ssid_listed_without_bssids_gives_nothing() -> None:
    """netsh without BSSID lines (the recorded 'no mode=bssid' output): no samples."""
    p, _ = probe({NETSH_NETWORKS: recorded("netsh_show_networks", "en_one_ssid_no_bssid_mode"),
                  NETSH_INTERFACES: NETSH_CONNECTED}, platform="win32", ssids=["SSID1 Name"])
    assert p.collect() == []


@pytest.mark.parametrize(("platform", "path", "method"), [
    ("win32", (), "netsh"), ("linux", ("iw", "nmcli"), "iw"), ("linux", ("nmcli",), "nmcli"),
])
def test_auto_method(platform: str, path: tuple[str, ...], method: str) -> None:
    """auto: Windows -> netsh; Linux -> iw if present, else nmcli."""
    p, _ = probe({}, platform=platform, path=path, ssids=["x"])
    assert p.method() == method


def test_auto_without_tools_and_failing_command() -> None:
    """No tool: one clear error; a failing command: its message with the classroom."""
    p, _ = probe({}, path=(), ssids=["x"])
    with pytest.raises(ProbeError, match="neither iw nor nmcli"):
        p.collect()
    p, _ = probe({("iw", "dev"): CommandError("iw dev: exit 1: nl80211 not found.")},
                 ssids=["x"])
    with pytest.raises(ProbeError, match=r"wifi 301 \(iw\): iw dev: exit 1: nl80211"):
        p.collect()


def test_settings_validation() -> None:
    """SSIDs must be usable as tags; sniff needs an interface; build wires production."""
    base: dict[str, object] = {"type": "wifi", "classroom": "301", "ssids": ["School-WiFi"]}
    s = WifiSettings.model_validate(base)
    assert (s.interval, s.method, s.interface) == (300.0, "auto", None)
    built = s.build()
    assert isinstance(built, WifiProbe) and built.sources.platform.startswith("linux")
    cases: list[tuple[dict[str, object], str]] = [
        ({"ssids": []}, "ssids"), ({"ssids": ["a\\b"]}, "backslash"),
        ({"ssids": ["x" * 33]}, "1-32 bytes"), ({"method": "sniff"}, "interface"),
        ({"method": "airport"}, "method"), ({"classroom": ""}, "classroom")]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            WifiSettings.model_validate({**base, **bad})


# --- sniff: pcap files written with scapy and read back through the same parser ------------

def beacon(bssid: str, ssid: bytes, dbm: int | None, freq: int, ds: int | None) -> Any:
    """A beacon as a monitor-mode interface captures it."""
    from scapy.layers.dot11 import Dot11, Dot11Beacon, Dot11Elt, RadioTap

    fields = "Flags+Channel" + ("+dBm_AntSignal" if dbm is not None else "")
    radiotap = RadioTap(present=fields, Flags=0, ChannelFrequency=freq,
                        ChannelFlags="2GHz" if freq < 3000 else "5GHz")
    if dbm is not None:
        radiotap.dBm_AntSignal = dbm
    frame = radiotap / Dot11(type=0, subtype=8, addr1="ff:ff:ff:ff:ff:ff", addr2=bssid,
                             addr3=bssid) / Dot11Beacon(cap="ESS") / Dot11Elt(ID="SSID",
                                                                             info=ssid)
    if ds is not None:
        frame = frame / Dot11Elt(ID="DSset", info=bytes([ds]))
    return frame


def write_capture(path: Path) -> None:
    """Beacons of two School-WiFi radios, a guest one, a probe request and a broken frame."""
    from scapy.layers.dot11 import Dot11, Dot11ProbeReq, RadioTap
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    packets = [beacon("00:11:22:33:44:01", b"School-WiFi", dbm, 2437, 6)
               for dbm in (-60, -52, -55, -71, -58)]
    packets += [beacon("00:11:22:33:44:02", b"School-WiFi", -67, 5180, None),
                beacon("00:11:22:33:44:02", b"School-WiFi", None, 5180, None),
                beacon("00:11:22:33:44:03", "访客".encode(), -40, 2412, 1),
                RadioTap() / Dot11(type=0, subtype=4, addr2="00:aa:00:aa:00:aa") /
                Dot11ProbeReq(),
                RadioTap() / Raw(b"\x08\x00\xff")]
    wrpcap(str(path), packets)


def test_sniffed_beacons_from_pcap(tmp_path: Path) -> None:
    """Median dBm per BSSID, channel from DS set or frequency, other frames ignored."""
    from scapy.utils import rdpcap

    pcap = tmp_path / "beacons.pcap"
    write_capture(pcap)
    asked: list[tuple[str, float]] = []

    def sniff(iface: str, seconds: float) -> list[Any]:
        asked.append((iface, seconds))
        return list(rdpcap(str(pcap)))

    s = WifiSettings.model_validate({"type": "wifi", "classroom": "301", "method": "sniff",
                                     "interface": "mon0", "sniff_duration": "3s",
                                     "ssids": ["School-WiFi", "访客"]})
    sources = WifiSources(run=Commands({}), which=lambda _: None, platform="linux",
                          sniff=sniff, now_ms=lambda: NOW_MS)
    assert view(WifiProbe(s, sources).collect()) == [
        ({"classroom": "301", "ssid": "School-WiFi", "bssid": "00:11:22:33:44:01",
          "band": "2.4GHz"}, {"connected": False, "rssi_dbm": -58.0, "channel": 6}),
        ({"classroom": "301", "ssid": "School-WiFi", "bssid": "00:11:22:33:44:02",
          "band": "5GHz"}, {"connected": False, "rssi_dbm": -67.0, "channel": 36}),
        ({"classroom": "301", "ssid": "访客", "bssid": "00:11:22:33:44:03", "band": "2.4GHz"},
         {"connected": False, "rssi_dbm": -40.0, "channel": 1}),
    ]
    assert asked == [("mon0", 3.0)]


def test_sniff_failure_is_probe_error() -> None:
    """No permission or no such interface: a ProbeError naming the interface."""
    def sniff(iface: str, seconds: float) -> list[Any]:
        raise PermissionError(1, "Operation not permitted")

    s = WifiSettings.model_validate({"type": "wifi", "classroom": "301", "method": "sniff",
                                     "interface": "mon0", "ssids": ["x"]})
    p = WifiProbe(s, WifiSources(run=Commands({}), which=lambda _: None, platform="linux",
                                 sniff=sniff))
    with pytest.raises(ProbeError, match=r"sniff on mon0: .*not permitted"):
        p.collect()


def random_frames(raw: list[bytes]) -> list[Any]:
    """Bytes as a monitor interface would hand them over: a RadioTap pcap read back by scapy."""
    import io

    from scapy.config import conf
    from scapy.layers.dot11 import RadioTap
    from scapy.utils import PcapReader, PcapWriter

    assert conf.l2types.get(127) is RadioTap  # importing dot11 makes the reader dissect it
    if not raw:
        return []
    buffer = io.BytesIO()
    writer = PcapWriter(buffer, linktype=127, sync=True)
    for data in raw:
        writer.write(data)
    buffer.seek(0)
    return list(PcapReader(buffer))  # type: ignore[arg-type]  # file objects work


@settings(max_examples=150, deadline=None)
@given(raw=st.lists(st.binary(max_size=300), max_size=5))
def test_random_frames_never_break_beacon_parsing(raw: list[bytes]) -> None:
    """Random frames from a capture: skipped, never an exception; real beacons still count."""
    packets = random_frames(raw)
    packets.append(beacon("00:11:22:33:44:55", b"School-WiFi", -50, 2412, None))
    found = beacons.parse(packets)
    assert any(b.bssid == "00:11:22:33:44:55" and b.rssi_dbm is not None for b in found)
