"""discover: answer parsing, subnet checks, typing of hosts, the YAML proposal (no network)."""

from __future__ import annotations

import argparse
import ipaddress

import pytest
import yaml

from agent.discover import (
    DiscoveredDevice,
    cmd_agent_discover,
    discover_devices,
    normalize_mac,
    parse_ackn,
    parse_subnet,
    proposal,
)
from agent.probes.av import AvSettings


@pytest.mark.parametrize(
    ("data", "mac"),
    [
        (b"%2ACKN=00:11:22:AA:bb:cc\r", "00:11:22:aa:bb:cc"),
        (b"%2ACKN=001122aabbcc\r", "00:11:22:aa:bb:cc"),
        (b"%2ACKN=00-11-22-aa-bb-cc\r\n", "00:11:22:aa:bb:cc"),
        (b"\x00\x00%2ACKN=00:11:22:33:44:55\r\x00", "00:11:22:33:44:55"),
        (b"%2SRCH\r", None),  # our own broadcast, looped back
        (b"%2LKUP=00:11:22:33:44:55\r", None),  # a notification, not a search answer
        (b"%2ACKN=00:11:22:33:44\r", None),  # five octets
        (b"%2ACKN=00:11:22:33:44:zz\r", None),
        (b"%1ACKN=00:11:22:33:44:55\r", None),  # class 1 has no search
        (b"\xff\xfe garbage", None),
    ],
)
def test_parse_ackn(data: bytes, mac: str | None) -> None:
    """Only a class 2 ACKN with six octets (with or without separators) is an answer."""
    assert parse_ackn(data) == mac


def test_normalize_mac_refuses_short() -> None:
    """Twelve hex digits or an error."""
    assert normalize_mac("AA:BB:CC:DD:EE:FF") == "aa:bb:cc:dd:ee:ff"
    with pytest.raises(ValueError, match="not a MAC"):
        normalize_mac("aa:bb")


@pytest.mark.parametrize(
    ("subnet", "expected"),
    [("192.168.3.0/24", "192.168.3.0/24"), ("192.168.3.77/24", "192.168.3.0/24"),
     ("10.0.0.0/20", "10.0.0.0/20"), ("192.168.3.9", "192.168.3.9/32")],
)
def test_parse_subnet_accepts(subnet: str, expected: str) -> None:
    """Host bits are allowed (an installer types the gateway's own address)."""
    assert str(parse_subnet(subnet)) == expected


@pytest.mark.parametrize(
    ("subnet", "match"),
    [("10.0.0.0/19", "at most 4096"), ("fd00::/120", "must be IPv4"),
     ("192.168.3.0/33", "not a CIDR"), ("", "not a CIDR")],
)
def test_parse_subnet_refuses(subnet: str, match: str) -> None:
    """Too large, IPv6, malformed."""
    with pytest.raises(ValueError, match=match):
        parse_subnet(subnet)


NET = "192.168.3.0/24"
ARP = {"192.168.3.10": "00:00:00:00:00:10", "192.168.3.11": "00:00:00:00:00:11",
       "192.168.3.12": "00:00:00:00:00:12", "192.168.3.2": "00:00:00:00:00:02"}
SEARCH = {"192.168.3.10": "0a:00:00:00:00:10", "192.168.3.20": "0a:00:00:00:00:20"}
PORTS = {"192.168.3.11": 3389, "192.168.3.12": 445}


def fake_pc_port(calls: list[str]) -> object:
    """An open-port check from PORTS that records what it was asked."""
    def check(ip: str, timeout: float) -> int | None:
        calls.append(ip)
        return PORTS.get(ip)
    return check


def test_hosts_typed_and_sorted_by_address() -> None:
    """PJLink answers make projectors (their ACKN MAC wins, even without ARP), open 3389/445
    makes PCs, the rest other; projectors are not port-scanned; sorted numerically."""
    calls: list[str] = []
    found = discover_devices(NET, 1.0, arp=lambda net, t: dict(ARP),
                             search=lambda net, t: dict(SEARCH),
                             pc_port=fake_pc_port(calls))  # type: ignore[arg-type]
    assert found == [
        DiscoveredDevice("192.168.3.2", "00:00:00:00:00:02", "other", "arp"),
        DiscoveredDevice("192.168.3.10", "0a:00:00:00:00:10", "projector", "pjlink"),
        DiscoveredDevice("192.168.3.11", "00:00:00:00:00:11", "pc", "tcp/3389"),
        DiscoveredDevice("192.168.3.12", "00:00:00:00:00:12", "pc", "tcp/445"),
        DiscoveredDevice("192.168.3.20", "0a:00:00:00:00:20", "projector", "pjlink"),
    ]
    assert sorted(calls) == ["192.168.3.11", "192.168.3.12", "192.168.3.2"]


def test_sweeps_get_the_parsed_network_and_timeout() -> None:
    """Both sweeps see the network (host bits cleared) and the timeout given."""
    seen: list[tuple[str, float]] = []

    def sweep(net: ipaddress.IPv4Network, timeout: float) -> dict[str, str]:
        seen.append((str(net), timeout))
        return {}

    assert discover_devices("192.168.3.77/24", 2.5, arp=sweep, search=sweep) == []
    assert seen == [("192.168.3.0/24", 2.5)] * 2


def test_arp_without_privilege() -> None:
    """No CAP_NET_RAW: PJLink results alone when there are any, else the PermissionError."""
    def denied(net: ipaddress.IPv4Network, timeout: float) -> dict[str, str]:
        raise PermissionError(1, "Operation not permitted")

    found = discover_devices(NET, 1.0, arp=denied, search=lambda net, t: dict(SEARCH))
    assert [d.device_type for d in found] == ["projector", "projector"]
    with pytest.raises(PermissionError):
        discover_devices(NET, 1.0, arp=denied, search=lambda net, t: {})


def test_proposal_is_a_valid_av_device_list() -> None:
    """Method per type (pjlink / tcp with the open port / icmp), MACs kept, names tag-safe."""
    devices = [DiscoveredDevice("192.168.3.10", "0a:00:00:00:00:10", "projector", "pjlink"),
               DiscoveredDevice("192.168.3.11", "00:00:00:00:00:11", "pc", "tcp/445"),
               DiscoveredDevice("192.168.3.2", None, "other", "arp")]
    text = proposal(devices, NET)
    assert text.startswith("# schoolmon agent discover --subnet 192.168.3.0/24: 3 device(s).")
    entries = yaml.safe_load(text)["devices"]
    assert entries == [
        {"name": "projector-192-168-3-10", "classroom": "TODO", "device_type": "projector",
         "host": "192.168.3.10", "mac": "0a:00:00:00:00:10", "method": "pjlink"},
        {"name": "pc-192-168-3-11", "classroom": "TODO", "device_type": "pc",
         "host": "192.168.3.11", "mac": "00:00:00:00:00:11", "method": "tcp", "port": 445},
        {"name": "other-192-168-3-2", "classroom": "TODO", "device_type": "other",
         "host": "192.168.3.2", "method": "icmp"},
    ]
    assert len(AvSettings.model_validate({"type": "av", "devices": entries}).devices) == 3


def test_cli_bad_subnet(capsys: pytest.CaptureFixture[str]) -> None:
    """A user mistake is one line on stderr and exit 2."""
    assert cmd_agent_discover(argparse.Namespace(subnet="10.0.0.0/8", timeout=1.0)) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and "at most 4096" in out.err
