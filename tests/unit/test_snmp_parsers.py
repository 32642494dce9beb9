"""IF-MIB and AP-table parsing from varbind lists, as the transport hands them over."""

from __future__ import annotations

import pytest

from agent.probes.snmp_parsers import VarBind, as_text, column_rows
from agent.probes.snmp_parsers.aptables import (
    AP_TABLES,
    ApState,
    parse_ap_table,
    with_expected,
)
from agent.probes.snmp_parsers.ifmib import IF_COLUMNS, IfRow, parse_if_table


def col(name: str, values: dict[str, object]) -> list[VarBind]:
    """The varbinds of one IF-MIB column, {index: value}."""
    return [(f"{IF_COLUMNS[name]}.{i}", v) for i, v in values.items()]  # type: ignore[misc]


def test_ifxtable_rows_with_64_bit_counters() -> None:
    """ifName, ifHighSpeed, HC counters; ifTable values of the same row ignored for counters."""
    walks = {
        "ifDescr": col("ifDescr", {"1": b"lo", "2": b"GigabitEthernet0/0/1"}),
        "ifName": col("ifName", {"1": b"lo", "2": b"GE0/0/1"}),
        "ifOperStatus": col("ifOperStatus", {"1": 1, "2": 2}),
        "ifSpeed": col("ifSpeed", {"1": 10_000_000, "2": 2**32 - 1}),
        "ifHighSpeed": col("ifHighSpeed", {"1": 10, "2": 10_000}),
        "ifInOctets": col("ifInOctets", {"1": 5, "2": 6}),
        "ifOutOctets": col("ifOutOctets", {"1": 7, "2": 8}),
        "ifHCInOctets": col("ifHCInOctets", {"1": 2**40, "2": 123}),
        "ifHCOutOctets": col("ifHCOutOctets", {"1": 2**41, "2": 456}),
        "ifInErrors": col("ifInErrors", {"1": 0, "2": 3}),
        "ifOutErrors": col("ifOutErrors", {"1": 0, "2": 4}),
    }
    assert parse_if_table(walks) == [
        IfRow("1", "lo", True, 10.0, 2**40, 2**41, 64, 0, 0),
        IfRow("2", "GE0/0/1", False, 10000.0, 123, 456, 64, 3, 4),
    ]


def test_iftable_only_falls_back_to_32_bit_and_ifdescr() -> None:
    """No ifXTable (old agents): ifDescr names (NUL cut), ifSpeed, 32-bit counters."""
    walks = {
        "ifDescr": col("ifDescr", {"1": b"MS TCP Loopback interface\x00", "65539": b"Intel\x00"}),
        "ifSpeed": col("ifSpeed", {"1": 10_000_000, "65539": 54_000_000}),
        "ifOperStatus": col("ifOperStatus", {"1": 1, "65539": 1}),
        "ifInOctets": col("ifInOctets", {"1": 100, "65539": 200}),
        "ifOutOctets": col("ifOutOctets", {"1": 300, "65539": 400}),
    }
    rows = parse_if_table(walks)
    assert [(r.name, r.speed_mbps, r.counter_bits, r.in_octets, r.out_octets) for r in rows] == [
        ("MS TCP Loopback interface", 10.0, 32, 100, 300), ("Intel", 54.0, 32, 200, 400)]
    assert rows[0].in_errors is None  # not walked: no field rather than a made-up 0


def test_half_present_hc_counters_use_the_32_bit_pair() -> None:
    """Both directions must come from the same counter width."""
    walks = {"ifName": col("ifName", {"3": b"eth0"}),
             "ifHCInOctets": col("ifHCInOctets", {"3": 10}),
             "ifInOctets": col("ifInOctets", {"3": 1}), "ifOutOctets": col("ifOutOctets", {"3": 2})}
    [row] = parse_if_table(walks)
    assert (row.counter_bits, row.in_octets, row.out_octets) == (32, 1, 2)


def test_names_duplicates_garbage_and_unknowns() -> None:
    """Shared names get #index; missing names become if<index>; garbage values are dropped."""
    walks = {
        "ifName": col("ifName", {"1": b"Vlan1", "2": b"Vlan1", "3": b""}),
        "ifOperStatus": col("ifOperStatus", {"1": 1, "2": 7, "3": b"up", "10": 1}),
        "ifHighSpeed": col("ifHighSpeed", {"1": 0, "2": 0}),
        "ifSpeed": col("ifSpeed", {"1": 0, "2": 2**32 - 1}),
        "ifHCInOctets": col("ifHCInOctets", {"1": "garbage"}),
    }
    rows = {r.index: r for r in parse_if_table(walks)}
    assert [rows[i].name for i in ("1", "2", "3", "10")] == ["Vlan1#1", "Vlan1#2", "if3", "if10"]
    assert rows["2"].up is False and rows["3"].up is None
    assert rows["1"].speed_mbps is None and rows["2"].speed_mbps is None
    assert rows["1"].in_octets is None


def test_rows_sort_by_numeric_index() -> None:
    """1, 2, 10 — not 1, 10, 2."""
    walks = {"ifName": col("ifName", {"10": b"c", "2": b"b", "1": b"a"})}
    assert [r.index for r in parse_if_table(walks)] == ["1", "2", "10"]


@pytest.mark.parametrize(("raw", "text"), [
    (b"GE0/0/1", "GE0/0/1"),
    ("教学楼-201".encode(), "教学楼-201"),
    ("教学楼-201".encode("gbk"), "教学楼-201"),  # controllers set up in GBK
    (b"Intel\x00junk", "Intel"),
    (b"a\\b\tc\n", "a b c"),  # no backslash or control characters in a tag
    (b"\x00", None),
    (b"  ", None),
    (42, None),
    (None, None),
])
def test_as_text(raw: object, text: str | None) -> None:
    """DisplayStrings become clean tag values."""
    assert as_text(raw) == text  # type: ignore[arg-type]


def test_column_rows_keeps_only_that_column() -> None:
    """Varbinds past the column (the next column, endOfMibView) are ignored."""
    varbinds: list[VarBind] = [
        ("1.3.6.1.2.1.2.2.1.2.1", b"lo"), (".1.3.6.1.2.1.2.2.1.2.2", b"eth0"),
        ("1.3.6.1.2.1.2.2.1.20.1", 0), ("1.3.6.1.2.1.2.2.1.2.3", None)]
    assert column_rows(varbinds, "1.3.6.1.2.1.2.2.1.2") == {"1": b"lo", "2": b"eth0"}


def ap_walks(vendor: str, rows: dict[str, tuple[object, object]],
             clients: dict[str, object] | None = None) -> dict[str, list[VarBind]]:
    """Walks of one vendor's name/state(/clients) columns: {index: (name, state)}."""
    t = AP_TABLES[vendor]
    walks: dict[str, list[VarBind]] = {
        "name": [(f"{t.name_oid}.{i}", n) for i, (n, _) in rows.items()],  # type: ignore[misc]
        "state": [(f"{t.state_oid}.{i}", s) for i, (_, s) in rows.items()],  # type: ignore[misc]
    }
    if clients is not None:
        walks["clients"] = [(f"{t.clients_oid}.{i}", c) for i, c in clients.items()]  # type: ignore[misc]
    return walks


MAC1, MAC2 = "0.224.252.17.34.1", "0.224.252.17.34.2"


@pytest.mark.parametrize(("vendor", "walks", "expected"), [
    ("huawei", ap_walks("huawei", {MAC1: (b"AP-301", 8), MAC2: (b"AP-302", 4)},
                        {MAC1: 23, MAC2: 0}),
     [ApState("AP-301", True, 23), ApState("AP-302", False, 0)]),
    ("h3c", ap_walks("h3c", {"1": (b"ap-a", 5), "2": (b"ap-b", 3)}),
     [ApState("ap-a", True, None), ApState("ap-b", False, None)]),
    ("ruijie", ap_walks("ruijie", {MAC1: (b"AP-A101", 1), MAC2: (b"AP-B201", 2)},
                        {MAC1: 12, MAC2: 0}),
     [ApState("AP-A101", True, 12), ApState("AP-B201", False, 0)]),
    # Cisco counts clients per radio (index AP MAC + slot): summed per AP.
    ("cisco", ap_walks("cisco", {MAC1: (b"Hall", 1), MAC2: (b"Lab", 2)},
                       {f"{MAC1}.0": 4, f"{MAC1}.1": 11, f"{MAC2}.0": 0, f"{MAC2}.1": 1}),
     [ApState("Hall", True, 15), ApState("Lab", False, 1)]),
])
def test_ap_tables(vendor: str, walks: dict[str, list[VarBind]],
                   expected: list[ApState]) -> None:
    """Each vendor's online value, name column and client count."""
    assert parse_ap_table(AP_TABLES[vendor], walks) == expected


def test_ap_rows_with_missing_or_garbage_cells() -> None:
    """No name: named by index; state missing or not a number: offline; duplicates merge."""
    walks = ap_walks("huawei", {MAC1: (None, 8), MAC2: (b"AP-X", b"normal"), "9.9": (b"AP-X", 8)},
                     {MAC1: 3, MAC2: 2, "9.9": "x"})
    assert parse_ap_table(AP_TABLES["huawei"], walks) == [
        ApState("AP-X", True, 2), ApState(f"index-{MAC1}", True, 3)]


def test_expected_aps_missing_from_the_table_are_offline() -> None:
    """The inventory's APs the controller does not list: online false, 0 clients (if counted)."""
    found = [ApState("AP-1", True, 5)]
    assert with_expected(found, ["AP-2", "AP-1", "AP-2"]) == [
        ApState("AP-1", True, 5), ApState("AP-2", False, 0)]
    assert with_expected([], ["AP-9"], counts_clients=False) == [ApState("AP-9", False, None)]
