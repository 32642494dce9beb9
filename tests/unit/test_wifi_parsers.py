"""Wi-Fi parsers on recorded real output (tests/fixtures/wifi), GBK bytes, and fuzzed input."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.probes.wifi_parsers import (
    iw_dev,
    iw_link,
    iw_scan,
    netsh_interfaces,
    netsh_networks,
    nmcli,
)
from agent.probes.wifi_parsers.base import (
    WifiParseError,
    WifiRadioOffError,
    band_of_channel,
    band_of_freq,
    channel_of_freq,
    decode_output,
    nm_percent_to_dbm,
    windows_percent_to_dbm,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wifi"


def _link(text: str, **_: Any) -> object:
    link = iw_link.parse(text)
    return asdict(link) if link else None


PARSERS: dict[str, Callable[..., object]] = {
    "iw_scan_dump": lambda text, **_: [asdict(b) for b in iw_scan.parse(text)],
    "iw_link": _link,
    "nmcli_dev_wifi_list": lambda text, fields=nmcli.FIELDS, **_: [
        asdict(b) for b in nmcli.parse(text, tuple(fields))],
    "netsh_show_networks": lambda text, **_: asdict(netsh_networks.parse(text)),
    "netsh_show_interfaces": lambda text, **_: [asdict(i) for i in netsh_interfaces.parse(text)],
}
CASES = sorted(p for p in FIXTURES.glob("*/*") if p.is_dir())


def run_case(command: str, raw: bytes, expected: dict[str, Any]) -> None:
    """Parse raw output and compare with expected.json (a result, or an error and message)."""
    parse = PARSERS[command]
    text = decode_output(raw)
    if "error" in expected:
        with pytest.raises(WifiParseError) as info:
            parse(text, **expected.get("args", {}))
        assert type(info.value).__name__ == expected["error"]["type"]
        assert str(info.value) == expected["error"]["message"]
    else:
        assert parse(text, **expected.get("args", {})) == expected["result"]


def test_every_recorded_command_has_cases() -> None:
    """All five commands have recorded cases, each with its source line kept."""
    assert {c.parent.name for c in CASES} == set(PARSERS)
    for case in CASES:
        assert "| " in (case / "SOURCE").read_text(), case
    assert len(CASES) == 10


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recorded_case(case: Path) -> None:
    """Each recorded output parses to its expected.json."""
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    run_case(case.parent.name, (case / "output.txt").read_bytes(), expected)


def test_gbk_variant_of_chinese_capture() -> None:
    """The zh-CN capture re-encoded as GBK (what a Chinese Windows console writes) parses the
    same as the UTF-8 one: the bytes are decoded, not guessed."""
    case = FIXTURES / "netsh_show_interfaces" / "zh_cn_disconnected_usb_11g"
    utf8 = (case / "output.txt").read_bytes()
    gbk = utf8.decode("utf-8").encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        gbk.decode("utf-8")
    assert decode_output(gbk) == utf8.decode("utf-8")
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    run_case("netsh_show_interfaces", gbk, expected)
    assert expected["result"] == [{"name": "WLAN", "ssid": None, "bssid": None,
                                   "signal_pct": None, "channel": None}]


# Constructed, not recorded: no zh-CN "show networks mode=bssid" capture was found.  Labels as
# public parsers of Chinese netsh output use them (信号, 无线电类型, 波段, 信道/频道).
ZH_NETWORKS = """
接口名称 : WLAN
当前有 2 个网络可见。

SSID 1 : 教学楼-WiFi
    网络类型            : 结构
    身份验证            : WPA2 - 个人
    加密                : CCMP
    BSSID 1             : a4:2b:b0:11:22:33
         信号           : 99%
         无线电类型     : 802.11ax
         波段           : 5 GHz
         信道           : 44
         基本速率(Mbps) : 6 12 24
    BSSID 2             : a4:2b:b0:11:22:34
         信号           : 40%
         无线电类型     : 802.11n
         频道           : 6

SSID 2 : School-WiFi
    网络类型            : 结构
    BSSID 1             : 00:11:22:33:44:55
         信号           : 100%
         无线电类型     : 802.11ax
         波段           : 6 GHz
         信道           : 37
"""


@pytest.mark.parametrize("encoding", ["utf-8", "gbk", "utf-8-sig"])
def test_chinese_networks_any_encoding(encoding: str) -> None:
    """Chinese labels: signal, channel (信道 or 频道) and band (6 GHz from the band line)."""
    scan = netsh_networks.parse(decode_output(ZH_NETWORKS.encode(encoding)))
    assert scan.interfaces == ["WLAN"] and scan.ssids == ["教学楼-WiFi", "School-WiFi"]
    assert [(b.ssid, b.bssid, b.signal_pct, b.rssi_dbm, b.channel, b.band) for b in scan.bss] == [
        ("教学楼-WiFi", "a4:2b:b0:11:22:33", 99, -50.5, 44, "5GHz"),
        ("教学楼-WiFi", "a4:2b:b0:11:22:34", 40, -80.0, 6, "2.4GHz"),
        ("School-WiFi", "00:11:22:33:44:55", 100, -50.0, 37, "6GHz"),
    ]


def test_decode_prefers_oem_codepage_before_gbk() -> None:
    """cp850 bytes (Dutch/Western OEM) decode with the OEM code page, not as GBK."""
    raw = "SSID 1 : Café-école".encode("cp850")
    assert decode_output(raw, "cp850") == "SSID 1 : Café-école"
    assert decode_output("网络".encode("gbk"), None) == "网络"
    assert decode_output(b"\xef\xbb\xbfInterface name : Wi-Fi") == "Interface name : Wi-Fi"
    assert decode_output(b"\xff\xfe\xfa", "no-such-codec").endswith("\ufffd")


def test_windows_and_networkmanager_percent_conversions() -> None:
    """netsh: pct/2 - 100; NetworkManager: inverse of its clamp to [-100, -40]."""
    assert [windows_percent_to_dbm(p) for p in (0, 1, 50, 99, 100)] == [
        -100.0, -99.5, -75.0, -50.5, -50.0]
    assert [nm_percent_to_dbm(p) for p in (0, 25, 50, 75, 100)] == [
        -100.0, -85.0, -70.0, -55.0, -40.0]
    for dbm in range(-100, -39):  # round trip through NetworkManager's own formula
        pct = 100 - int(100.0 * abs(max(-100, min(-40, dbm)) + 40) / 60.0)
        assert 0 <= nm_percent_to_dbm(pct) - dbm < 0.6 + 1e-9


@pytest.mark.parametrize(("freq", "channel", "band"), [
    (2412, 1, "2.4GHz"), (2437, 6, "2.4GHz"), (2472, 13, "2.4GHz"), (2484, 14, "2.4GHz"),
    (5180, 36, "5GHz"), (5500, 100, "5GHz"), (5745, 149, "5GHz"), (5885, 177, "5GHz"),
    (5935, 2, "6GHz"), (5955, 1, "6GHz"), (6135, 37, "6GHz"), (7115, 233, "6GHz"),
    (60480, None, None),
])
def test_channel_and_band_of_frequency(freq: int, channel: int | None, band: str | None) -> None:
    """IEEE channel numbering per band."""
    assert channel_of_freq(freq) == channel and band_of_freq(freq) == band


def test_band_of_channel_does_not_guess_6ghz() -> None:
    """Channels alone: 1-14 are 2.4 GHz, 32-177 are 5 GHz, anything else unknown."""
    assert [band_of_channel(c) for c in (1, 14, 15, 36, 165, 177, 181, 233)] == [
        "2.4GHz", "2.4GHz", None, "5GHz", "5GHz", "5GHz", None, None]


def test_iw_scan_escaped_utf8_ssid_associated_and_5ghz() -> None:
    """iw escapes non-ASCII SSID bytes as \\xNN; '-- associated' marks the connected BSS."""
    text = (
        "BSS 11:22:33:44:55:66(on wlan0) -- associated\n"
        "\tfreq: 5180.0\n\tsignal: -61.00 dBm\n"
        "\tSSID: \\xe6\\x95\\x99\\xe5\\xad\\xa6-WiFi\n"
        "\tHT operation:\n\t\t * primary channel: 36\n"
        "BSS 11:22:33:44:55:67(on wlan0)\n\tfreq: 6135\n\tsignal: -80.00 dBm\n\tSSID: \n"
    )
    first, second = iw_scan.parse(text)
    assert (first.ssid, first.channel, first.freq_mhz, first.band, first.rssi_dbm,
            first.connected) == ("教学-WiFi", 36, 5180, "5GHz", -61.0, True)
    assert (second.ssid, second.channel, second.band, second.connected) == (
        "", 37, "6GHz", False)


def test_iw_link_not_connected_and_iw_dev() -> None:
    """'Not connected.' is None; iw dev lists interfaces with their type."""
    assert iw_link.parse("Not connected.\n") is None
    text = ("phy#1\n\tInterface mon0\n\t\tifindex 5\n\t\ttype monitor\n"
            "phy#0\n\tUnnamed/non-netdev interface\n\t\ttype P2P-device\n"
            "\tInterface wlp2s0\n\t\tifindex 3\n\t\taddr 00:11:22:33:44:55\n\t\ttype managed\n")
    assert iw_dev.parse(text) == [("mon0", "monitor"), ("wlp2s0", "managed")]
    assert iw_dev.parse("") == []


def test_nmcli_terse_escapes_and_in_use() -> None:
    """Escaped colons and backslashes in SSID and BSSID; IN-USE '*' is the connected one."""
    text = ("*:Room\\:301\\\\A:AA\\:BB\\:CC\\:DD\\:EE\\:FF:Infra:149:5745 MHz:81:WPA2\n"
            " :School-WiFi:AA\\:BB\\:CC\\:DD\\:EE\\:00:Infra:6:2437 MHz:30:WPA2 WPA3\n")
    first, second = nmcli.parse(text)
    assert (first.ssid, first.bssid, first.channel, first.band, first.connected,
            first.signal_pct, first.rssi_dbm) == (
        "Room:301\\A", "aa:bb:cc:dd:ee:ff", 149, "5GHz", True, 81, -51.4)
    assert (second.connected, second.rssi_dbm) == (False, -82.0)


@pytest.mark.parametrize(("parse", "text", "match"), [
    (iw_scan.parse, "command failed: Network is down (-100)\n", "expected 'BSS"),
    (iw_scan.parse, "BSS 00:11:22:33:44:55(on wlan0)\n\tsignal: strong\n", "bad signal"),
    (iw_link.parse, "", "empty"),
    (iw_link.parse, "Error: no link\n", "Connected to"),
    (iw_dev.parse, "hello\n", "phy#"),
    (nmcli.parse, "yes:x:y\n", "3 fields"),
    (nmcli.parse, " :S:not-a-mac:Infra:1:2412 MHz:50:WPA2\n", "not a BSSID"),
    (nmcli.parse, " :S:AA\\:BB\\:CC\\:DD\\:EE\\:FF:Infra:1:2412 MHz:150:\n", "percentage"),
    (netsh_networks.parse, "", "no 'Interface name'"),
    (netsh_networks.parse, "The Wireless AutoConfig Service (wlansvc) is not running.\n",
     "wlansvc"),
    (netsh_networks.parse, "Interface name : Wi-Fi\n    BSSID 1 : 00:11:22:33:44:55\n",
     "outside an SSID"),
    (netsh_interfaces.parse, "There is no wireless interface on the system.\n", "no wireless"),
])
def test_bad_output_is_parse_error(parse: Callable[[str], object], text: str,
                                   match: str) -> None:
    """What is not the command's output is a WifiParseError saying why."""
    with pytest.raises(WifiParseError, match=match):
        parse(text)


def test_netsh_zero_networks_is_empty_and_radio_off_is_radio_off() -> None:
    """'0 networks visible' is an empty scan; a sentence without a number is the radio off."""
    empty = netsh_networks.parse("Interface name : Wi-Fi\nThere are 0 networks currently "
                                 "visible.\n")
    assert empty.bss == [] and empty.interfaces == ["Wi-Fi"]
    with pytest.raises(WifiRadioOffError, match="uitgeschakeld"):
        netsh_networks.parse("Interfacenaam : Wi-Fi\nDe WLAN-interface is uitgeschakeld.\n")


def _all_fixture_lines() -> list[str]:
    lines: list[str] = []
    for case in CASES:
        lines += decode_output((case / "output.txt").read_bytes()).splitlines()
    return lines + ZH_NETWORKS.splitlines()


FRAGMENTS = _all_fixture_lines()
TEXT_PARSERS: list[Callable[[str], object]] = [
    iw_scan.parse, iw_link.parse, iw_dev.parse, nmcli.parse,
    lambda t: nmcli.parse(t, ("ACTIVE", "SSID", "BSSID", "MODE", "CHAN", "FREQ", "SIGNAL")),
    netsh_networks.parse, netsh_interfaces.parse,
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=3000), oem=st.sampled_from([None, "cp850", "cp437", "cp936"]))
def test_random_bytes_raise_only_parse_errors(raw: bytes, oem: str | None) -> None:
    """Any bytes through decode and every parser: a result or WifiParseError, nothing else."""
    text = decode_output(raw, oem)
    for parse in TEXT_PARSERS:
        with contextlib.suppress(WifiParseError):
            parse(text)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=80)),
                      max_size=60))
def test_shuffled_real_lines_raise_only_parse_errors(lines: list[str]) -> None:
    """Real lines in random order and mixed with random text reach the deeper branches."""
    text = "\n".join(lines)
    for parse in TEXT_PARSERS:
        with contextlib.suppress(WifiParseError):
            parse(text)
