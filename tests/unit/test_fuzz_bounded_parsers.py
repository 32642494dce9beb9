"""Bounded fuzzing of the device-output parsers the existing property tests do not cover.

tests/unit/test_ssh_parsers.py and test_wifi_parsers.py / test_wifi_probe.py already fuzz the SSH
CLI and Wi-Fi parsers.  Here: the SNMP probe end to end on whatever varbinds a device returns
(IF-MIB and the four AP tables), the PJLink client on whatever a projector sends, and ICMP echo
reply parsing on whatever a socket delivers.  Documented behaviour under test:

- SNMP: the parsers never raise (garbage cells are None, unnamed rows get their index), every
  interface and AP name is a usable tag, and every sample the probe makes from any answer is
  within the wire contract, so one odd device never costs the batch of a whole poll;
- PJLink: ``query_projector`` raises only ``PjlinkError`` subclasses, and a status it returns
  makes a valid ``av`` sample;
- ICMP: ``parse_echo_reply`` returns an ``EchoReply`` or None, never raises.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.probes.icmp import ECHO_REPLY, build_echo_request, checksum, parse_echo_reply
from agent.probes.pjlink import status_fields
from agent.probes.pjlink_protocol import PjlinkError, query_projector
from agent.probes.snmp import SnmpProbe, SnmpSettings, SnmpTargetSettings
from agent.probes.snmp_parsers import SnmpError, Value, VarBind
from agent.probes.snmp_parsers.aptables import AP_TABLES, parse_ap_table, with_expected
from agent.probes.snmp_parsers.ifmib import IF_COLUMNS, SYS_UPTIME, parse_if_table
from common.wire import FieldValue, Sample, check_samples

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
T0_MS = 1_763_890_000_000

# --- SNMP -----------------------------------------------------------------------------------

COLUMNS = sorted({*IF_COLUMNS.values(),
                  *(oid for table in AP_TABLES.values() for oid in table.columns().values())})
snmp_values: st.SearchStrategy[Value] = st.one_of(
    st.none(),
    st.integers(-(2**31), 2**32 - 1),  # INTEGER, Counter32, Gauge32, TimeTicks
    st.integers(0, 2**64 - 1),  # Counter64
    st.binary(max_size=40),
    st.sampled_from(["天河一小-AP301".encode("gb18030"), "AP-301".encode("utf-16-le"),
                     b"GigabitEthernet0/0/1\x00\x00", b"\\\x1b[31m", b"\xff" * 200]),
    st.text(max_size=40),
)
sub_ids = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3).map(
    lambda ids: ".".join(map(str, ids)))
# A long index: an AP table indexed by MAC, a table indexed by a string, or a broken agent.
long_ids = st.builds(lambda n, b: ".".join([str(b)] * n), st.integers(6, 128), st.integers(0, 255))


def varbinds(column: str) -> st.SearchStrategy[list[VarBind]]:
    """What a walk of ``column`` may return: rows under it, stray OIDs, odd indexes."""
    oid = st.builds(lambda prefix, index: f"{prefix}.{index}",
                    st.sampled_from([column, "." + column, "1.3.6.1.2.1.1"]),
                    st.one_of(sub_ids, sub_ids, long_ids))
    return st.lists(st.tuples(oid, snmp_values), max_size=6)


def if_walks() -> st.SearchStrategy[dict[str, list[VarBind]]]:
    """Walks of any subset of the IF-MIB columns."""
    return st.fixed_dictionaries({}, optional={name: varbinds(oid)
                                               for name, oid in IF_COLUMNS.items()})


def tag_ok(kind: str, tags: dict[str, str]) -> None:
    """The tags are within the wire contract (WireError otherwise)."""
    check_samples([Sample(kind, T0_MS, tags, {"up": True})])


@FUZZ
@given(walks=if_walks())
def test_if_table_rows_always_make_valid_tags(walks: dict[str, list[VarBind]]) -> None:
    """parse_if_table never raises; every interface name is a usable ``ifname`` tag."""
    rows = parse_if_table(walks)
    for row in rows:
        tag_ok("netdev_if", {"device": "core-sw", "ifname": row.name, "source": "snmp"})
    assert len({row.name for row in rows}) == len(rows)  # each interface its own series


@FUZZ
@given(data=st.data(), vendor=st.sampled_from(sorted(AP_TABLES)))
def test_ap_table_rows_always_make_valid_samples(data: st.DataObject, vendor: str) -> None:
    """parse_ap_table and with_expected never raise; names and client counts are valid."""
    table = AP_TABLES[vendor]
    walks = {name: data.draw(varbinds(oid)) for name, oid in table.columns().items()}
    aps = with_expected(parse_ap_table(table, walks), ["AP-Library"],
                        table.clients_oid is not None)
    for ap in aps:
        fields: dict[str, FieldValue] = {"online": ap.online}
        if ap.clients is not None:
            fields["clients"] = ap.clients
        check_samples([Sample("ap", T0_MS, {"ap": ap.name, "controller": "ac-1"}, fields)])


class FuzzSession:
    """An SNMP session answering from hypothesis' data (one device, any answers)."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    async def get(self, target: SnmpTargetSettings, oids: Sequence[str]) -> list[VarBind]:
        """sysUpTime.0: any value, or an SNMP error."""
        if self.data.draw(st.integers(0, 20)) == 0:
            raise SnmpError("timeout")
        return [(SYS_UPTIME, self.data.draw(snmp_values))]

    async def walk(self, target: SnmpTargetSettings, column: str) -> list[VarBind]:
        """Any rows for the column, or an SNMP error."""
        if self.data.draw(st.integers(0, 30)) == 0:
            raise SnmpError("walk failed")
        return self.data.draw(varbinds(column))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), vendor=st.sampled_from(sorted(AP_TABLES)))
def test_any_snmp_answers_make_only_valid_samples(data: st.DataObject, vendor: str) -> None:
    """Three polls of a switch/controller answering garbage: samples always encodable."""
    settings_ = SnmpSettings.model_validate({"type": "snmp", "targets": [
        {"name": "core-sw", "host": "192.0.2.1", "community_env": "C", "ap_table": vendor,
         "aps": ["AP-Teach-301", "AP-Library"]}]}, context={"environ": {"C": "x"}})
    session = FuzzSession(data)

    @asynccontextmanager
    async def sessions() -> AsyncIterator[FuzzSession]:
        yield session

    clock = [100.0]
    probe = SnmpProbe(settings_, sessions, monotonic=lambda: clock[0],  # type: ignore[arg-type]
                      now_ms=lambda: T0_MS + int(clock[0] * 1000))
    for _ in range(3):
        clock[0] += data.draw(st.sampled_from([0.0, 0.001, 60.0, 86400.0]))
        samples = probe.collect()
        check_samples(samples)  # raises WireError on anything a collector would reject
        assert any(s.kind == "netdev" for s in samples)


# --- PJLink ---------------------------------------------------------------------------------

COMMANDS = ["POWR", "ERST", "LAMP", "INPT", "AVMT", "NAME", "INF1", "INF2", "CLSS", "SNUM",
            "SVER", "FILT"]
VALUES = ["0", "1", "2", "3", "000000", "200100", "012", "1234 1", "1234 1 99 0", "12345678901 1",
          "31", "11", "30", "Proj-301", "EPSON", "EB-X41", "2", "1", "SN123", "1.0", "999999999",
          "ERR1", "ERR2", "ERR3", "ERR4", "ERRA", "", " ", "-1", "1e3", "٣", "x" * 300]


@st.composite
def projector_bytes(draw: st.DrawFn) -> bytes:
    """A greeting, then an answer per command; each piece may be wrong in some way."""
    greeting = draw(st.sampled_from([b"PJLINK 0", b"PJLINK 1 498e4a67", b"PJLINK 1",
                                     b"PJLINK ERRA", b"PJLINK 2", b"pjlink 0", b"HTTP/1.1 400"]))
    out = [greeting]
    for command in COMMANDS:
        if draw(st.integers(0, 6)) == 0:  # an unsolicited notification first
            out.append(b"%2LKUP=" + draw(st.binary(max_size=12)))
        piece = draw(st.sampled_from(["answer", "answer", "answer", "other", "junk", "stop"]))
        if piece == "stop":
            break
        if piece == "junk":
            out.append(draw(st.binary(max_size=60)))
            continue
        name = command if piece == "answer" else draw(st.sampled_from(COMMANDS))
        value = draw(st.one_of(st.sampled_from(VALUES), st.text(max_size=20)))
        pj_class = draw(st.sampled_from(["1", "2"]))
        out.append(f"%{pj_class}{name}={value}".encode("utf-8", "surrogateescape"))
    sep = draw(st.sampled_from([b"\r", b"\r\n", b"\n", b"\x00\r", b"\r\x00\x00"]))
    return sep.join(out) + draw(st.sampled_from([sep, b""]))


@FUZZ
@given(raw=st.one_of(projector_bytes(), st.binary(max_size=400)),
       password=st.sampled_from([None, "secret"]))
def test_any_projector_answer_raises_only_pjlink_errors(raw: bytes, password: str | None) -> None:
    """Whatever the projector sends, then closes: a status (valid as a sample) or PjlinkError."""
    client, projector = socket.socketpair()
    projector.sendall(raw)
    projector.shutdown(socket.SHUT_WR)  # EOF after the bytes; our commands still go in
    try:
        status = query_projector("proj-301", 4352, password, 2.0,
                                 connect=lambda _address, _timeout: client)
    except PjlinkError:
        return
    finally:
        projector.close()
        client.close()
    tags = {"device": "proj-301", "classroom": "301", "device_type": "projector"}
    check_samples([Sample("av", T0_MS, tags, status_fields(status))])


# --- ICMP -----------------------------------------------------------------------------------

@st.composite
def icmp_packets(draw: st.DrawFn) -> tuple[int, bytes, bool]:
    """A real echo reply (maybe behind an IPv4 header), then damaged, or random bytes."""
    family = draw(st.sampled_from([socket.AF_INET, socket.AF_INET6]))
    request = build_echo_request(family, draw(st.integers(0, 0xFFFF)),
                                 draw(st.integers(0, 0xFFFF)), draw(st.binary(max_size=56)))
    reply = bytearray(request)
    reply[0] = ECHO_REPLY[family]
    reply[2:4] = b"\x00\x00"
    reply[2:4] = struct.pack("!H", checksum(bytes(reply)))
    with_ip = family == socket.AF_INET and draw(st.booleans())
    if with_ip:
        ihl = draw(st.sampled_from([5, 5, 6, 15, 0, 1]))
        reply[0:0] = bytes([0x40 | ihl]) + bytes(ihl * 4 - 1 if ihl else 19)
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, max(0, len(reply) - 1)))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and reply:
            reply[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del reply[pos:]
        else:
            reply[pos:pos] = draw(st.binary(min_size=1, max_size=4))
    if draw(st.integers(0, 4)) == 0:
        return family, draw(st.binary(max_size=100)), draw(st.booleans())
    return family, bytes(reply), with_ip


@settings(max_examples=400, deadline=None)
@given(packet=icmp_packets())
def test_any_packet_is_an_echo_reply_or_none(packet: tuple[int, bytes, bool]) -> None:
    """Truncated, corrupt or foreign packets are None; nothing raises."""
    family, data, with_ip = packet
    reply = parse_echo_reply(family, data, with_ip)
    assert reply is None or (0 <= reply.ident <= 0xFFFF and 0 <= reply.seq <= 0xFFFF)


def test_undamaged_reply_parses() -> None:
    """The generator's starting point is a reply the parser accepts (the fuzzing means
    something)."""
    request = bytearray(build_echo_request(socket.AF_INET, 77, 5, b"abc"))
    request[0] = ECHO_REPLY[socket.AF_INET]
    request[2:4] = b"\x00\x00"
    request[2:4] = struct.pack("!H", checksum(bytes(request)))
    reply = parse_echo_reply(socket.AF_INET, bytes(request), False)
    assert reply is not None and (reply.ident, reply.seq, reply.payload) == (77, 5, b"abc")
