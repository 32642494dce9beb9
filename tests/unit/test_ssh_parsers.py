"""The ssh probe's CLI parsers on recorded real output (tests/fixtures/ssh/<parser>/<case>/).

Each case directory holds ``output.txt`` (the device's answer), ``SOURCE`` (where it comes from,
with its licence) and ``expected.json``: the parse result checked against the output by hand, or
``{"error": "..."}`` for output that must be refused with a ParseError.  The directory name of a
parser is its module under agent/probes/ssh_parsers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.probes.ssh_parsers import VENDORS
from agent.probes.ssh_parsers.hp_comware_display_interface_brief import full_name
from agent.probes.ssh_parsers.model import IfStatus, ParseError, merge, speed_mbps

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ssh"
CASES = sorted(p for p in FIXTURES.glob("*/*") if p.is_dir())
PARSERS = sorted({case.parent.name for case in CASES})
# Real captures (not the derived truncated/paged ones): inputs for the mutation properties.
CAPTURES = [c for c in CASES if "error" not in json.loads((c / "expected.json").read_text())]


def parser(name: str) -> ModuleType:
    """The parser module of a fixture directory."""
    return importlib.import_module(f"agent.probes.ssh_parsers.{name}")


def output(case: str | Path) -> str:
    """A recorded answer as the device sent it (CRLF line ends kept)."""
    return (FIXTURES / case / "output.txt").read_bytes().decode("utf-8")


def as_json(result: object) -> object:
    """A parse result in the form expected.json holds."""
    if isinstance(result, int):
        return {"uptime_s": result}
    assert isinstance(result, list)
    return [dataclasses.asdict(item) for item in result]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.name}" for c in CASES])
def test_recorded_output(case: Path) -> None:
    """Each recorded answer parses to exactly what was verified by hand (or is refused)."""
    text = output(case)
    expected = json.loads((case / "expected.json").read_text())
    assert (case / "SOURCE").read_text().strip(), "every fixture names its source"
    module = parser(case.parent.name)
    if isinstance(expected, dict) and "error" in expected:
        with pytest.raises(ParseError) as info:
            module.parse(text)
        assert expected["error"] in str(info.value)
        assert module.COMMAND in str(info.value)  # the error names the command
    else:
        assert as_json(module.parse(text)) == expected


def test_every_command_of_every_vendor_has_recorded_cases() -> None:
    """No parser the probe runs is without a recorded answer."""
    used = {cmd_parse.__module__.rsplit(".", 1)[1]
            for vendor in VENDORS.values()
            for _, cmd_parse in (*vendor.interface_commands,
                                 *([vendor.uptime_command] if vendor.uptime_command else []))}
    assert len(used) == 14
    assert used <= set(PARSERS), used - set(PARSERS)


@pytest.mark.parametrize("name", PARSERS)
@pytest.mark.parametrize("text", [
    "% Invalid input detected at '^' marker.",
    "Error: Unrecognized command found at '^' position.",
    "% Unrecognized command found at '^' position.",
    "-bash: ip: command not found",
    "",
    "\r\n  \n",
])
def test_refusals_and_empty_output_are_parse_errors(name: str, text: str) -> None:
    """What a device prints instead of an answer is a ParseError naming the command."""
    module = parser(name)
    if text.strip() == "" and name == "linux_sys_class_net_speed":
        assert module.parse(text) == []  # no interface has a speed: legitimately empty
        return
    with pytest.raises(ParseError, match=r"rejected|empty") as info:
        module.parse(text)
    assert info.value.command == module.COMMAND


@pytest.mark.parametrize("name", PARSERS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(st.characters(codec="utf-8"), max_size=400)
       | st.lists(st.sampled_from([
           "GigabitEthernet0/0/1 current state : UP", "Line protocol current state : U",
           "Current state: UP", "Input:  1 packets, 2 bytes", "Input: 99999999999999999999 bytes",
           "Interface PHY Protocol InUti OutUti inErrors outErrors", "Speed : 1000,",
           "Interface Link Protocol Main IP", "GE0/0/1 UP UP --", "Interface Status Vlan Speed",
           "Gi 1/1 up 1 Full 1000M copper", "x is up, line protocol is up", "uptime is 3 hours",
           "  5 minute input rate 99 bits/sec", "  1 packets input, 2 bytes", "eth0: 1 2 3",
           "Inter-| Receive | Transmit", " face |bytes", "1: lo: <UP> mtu 1 state UP",
           "/sys/class/net/eth0/speed:100", "12.5 3.0", "", " ", "\t", "(s)", "--"]),
           max_size=12).map("\n".join))
def test_random_text_raises_only_parse_error(name: str, text: str) -> None:
    """Garbage never raises anything but the documented ParseError."""
    with contextlib.suppress(ParseError):
        parser(name).parse(text)


@pytest.mark.parametrize("case", CAPTURES, ids=[f"{c.parent.name}/{c.name}" for c in CAPTURES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cut_off_output_is_refused_or_a_prefix(case: Path, data: st.DataObject) -> None:
    """An answer cut anywhere parses to a prefix of the full result (the last interface may miss
    counters) or is refused; an uptime is exact or refused."""
    module = parser(case.parent.name)
    text = output(case)
    full = module.parse(text)
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    try:
        part = module.parse(text[:cut])
    except ParseError:
        return
    if isinstance(full, int):
        assert part == full
        return
    assert isinstance(part, list) and len(part) <= len(full)
    if part:
        n = len(part)
        assert part[: n - 1] == full[: n - 1]
        assert part[-1].name == full[n - 1].name


@pytest.mark.parametrize("case", CAPTURES, ids=[f"{c.parent.name}/{c.name}" for c in CAPTURES])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mangled_lines_raise_only_parse_error(case: Path, data: st.DataObject) -> None:
    """Lines dropped, duplicated or garbled in a real answer never crash a parser."""
    lines = output(case).splitlines()
    ops = data.draw(st.lists(st.tuples(st.sampled_from(["drop", "dup", "garble"]),
                                       st.integers(0, max(0, len(lines) - 1)),
                                       st.text(max_size=8)), max_size=6))
    for op, i, junk in ops:
        if i >= len(lines):
            continue
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        else:
            pos = len(lines[i]) // 2
            lines[i] = lines[i][:pos] + junk + lines[i][pos:]
    with contextlib.suppress(ParseError):
        parser(case.parent.name).parse("\n".join(lines))


@pytest.mark.parametrize(("short", "full"), [
    ("GE0/0/1", "GigabitEthernet0/0/1"), ("XGE0/0/10", "Ten-GigabitEthernet0/0/10"),
    ("BAGG10", "Bridge-Aggregation10"), ("Vlan1", "Vlan-interface1"), ("InLoop0", "InLoopBack0"),
    ("REG0", "Register-Tunnel0"), ("M-GE0/0/0", "M-GigabitEthernet0/0/0"), ("Loop0", "LoopBack0"),
    ("NULL0", "NULL0"), ("Cellular0/0", "Cellular0/0"), ("Aux0", "Aux0"),
    ("GigabitEthernet0/0/1", "GigabitEthernet0/0/1"), ("Vlan-interface1", "Vlan-interface1"),
])
def test_comware_brief_names_expand_to_display_interface_names(short: str, full: str) -> None:
    """Abbreviated and full names of one interface meet (pairs seen in the 9119P17 captures)."""
    assert full_name(short) == full


def test_comware_brief_and_detail_of_one_router_name_the_same_interfaces() -> None:
    """release_9119p17: the brief and the detailed capture of one router merge one-to-one."""
    brief = parser("hp_comware_display_interface_brief").parse(
        output("hp_comware_display_interface_brief/release_9119p17"))
    detail = parser("hp_comware_display_interface").parse(
        output("hp_comware_display_interface/router_release_09119p17"))
    assert {full_name(b.name) for b in brief} == {d.name for d in detail}


@pytest.mark.parametrize(("text", "mbps"), [
    ("1000M", 1000), ("10G", 10000), ("1G(a)", 1000), ("20G(a)", 20000), ("100Mb/s", 100),
    ("100Mbps", 100), ("2.5G", 2500), ("10Gb/s", 10000), ("auto", None), ("Unknown", None),
    ("Auto-speed", None), ("0M", None), ("v", None), ("", None),
])
def test_speed_forms(text: str, mbps: int | None) -> None:
    """Speeds as the vendors print them."""
    assert speed_mbps(text) == mbps


def test_merge_first_report_wins_and_fills_gaps() -> None:
    """Detail first, brief fills what detail lacks; names meet through the key."""
    detail = [IfStatus("GigabitEthernet0/0/1", up=False, in_bps=8.0),
              IfStatus("Register-Tunnel0", up=False)]
    brief = [IfStatus("GE0/0/1", up=True, speed_mbps=1000), IfStatus("REG0", up=True),
             IfStatus("GE0/0/9", up=True)]
    merged = {m.name: m for m in merge(detail, brief, key=full_name)}
    assert merged["GigabitEthernet0/0/1"] == IfStatus(
        "GigabitEthernet0/0/1", up=False, in_bps=8.0, speed_mbps=1000)
    assert merged["Register-Tunnel0"].up is False  # detail says protocol DOWN; brief '--'
    assert merged["GigabitEthernet0/0/9"].up is True


@pytest.mark.parametrize(("case", "name", "up", "admin_down", "speed"), [
    ("huawei_display_interface/switch_all_ifaces_eth_trunk", "Eth-Trunk0", False, False, None),
    ("huawei_display_interface/switch_all_ifaces_eth_trunk", "40GE0/0/1", False, False, 40000),
    ("huawei_display_interface/switch_all_ifaces_eth_trunk", "LoopBack1", True, False, None),
    ("huawei_display_interface/ar_ge0_0_0_wan_dhcp", "NULL0", True, False, None),  # spoofing
    ("huawei_display_interface/ar_ge0_0_0_switchport_down", "GigabitEthernet0/0/4", False,
     False, 1000),  # physically UP, line protocol DOWN
    ("huawei_display_interface_brief/ar_router_cellular_dialer", "GigabitEthernet0/0/1", False,
     False, None),  # ^down: standby
    ("huawei_display_interface_brief/ar_router_cellular_dialer", "GigabitEthernet0/0/5", False,
     False, None),  # printed 'GigabitEthernet0/0/5(v)'
    ("hp_comware_display_interface/mixed_comware5_and_7_stp_down", "GigabitEthernet12/0/17",
     False, True, None),  # Comware 5: 'DOWN ( Administratively )'
    ("hp_comware_display_interface/mixed_comware5_and_7_stp_down", "GigabitEthernet11/0/17",
     False, False, None),  # Comware 7: 'STP DOWN'
    ("hp_comware_display_interface/comware7_ge1_1_0_48_trunk", "GigabitEthernet1/1/0/48", True,
     False, 1000),
    ("hp_comware_display_interface_brief/fullauto", "BAGG10", True, False, 20000),
    ("hp_comware_display_interface_brief/fullauto", "M-GE0/0/0", False, True, None),  # ADM
    ("hp_comware_display_interface_brief/fullauto", "NULL0", True, False, None),  # UP(s)
    ("cisco_ios_show_interfaces/router_mv96340", "GigabitEthernet0/1", False, True, None),
    ("cisco_ios_show_interfaces/catalyst_vlan1_and_ports", "FastEthernet1/0/4", False, False,
     None),  # notconnect, Auto-speed
    ("ruijie_show_interfaces_status/chassis_whitespace_collapsed", "GigabitEthernet 5/1", True,
     False, 1000),  # Vlan 'routed'
    ("ruijie_show_interfaces/gi9_21_fiber_trunk", "GigabitEthernet 9/21", True, False, 1000),
])
def test_tricky_states_from_the_captures(case: str, name: str, up: bool, admin_down: bool,
                                         speed: int | None) -> None:
    """Trunks, spoofing, standby, flags on names, admin down vs down, STP down, Comware 5/7."""
    found = {i.name: i for i in parser(case.partition("/")[0]).parse(output(case))}
    item = found[name]
    assert (item.up, item.admin_down, item.speed_mbps) == (up, admin_down, speed)
