"""Hostile or broken SNMP devices on loopback (snmpsimd serving generated walks): a bad value
costs one value, one device never touches another's samples, a large switch fits the wire.

- ``extreme``: every column of IF-MIB at the edge of its type or past it: Counter64 2**64-1 in
  ifInErrors (a Counter32 column; devices send what they like), a negative ifHighSpeed, an
  ifHCInOctets of 2**64-1, a sysUpTime of 2**32-1.
- ``normal``: a plain two-port switch, polled in the same probe run.
- ``large``: 1,200 interfaces with Chinese names (526 KB of samples in one poll before the
  scheduler split batches by bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.probes.snmp import SnmpProbe, SnmpSettings
from agent.scheduler import ProbeScheduler, split_by_bytes
from agent.spool import Spool
from common.wire import (
    MAX_PAYLOAD_BYTES,
    AgentIdentity,
    Sample,
    check_samples,
    decode_envelope,
    wrap_envelope,
)
from tests.peers.snmpsim import run_snmpsim

pytestmark = pytest.mark.integration

IF, IFX = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
U64_MAX = 2**64 - 1
LONG_NAME = "千兆以太网端口教学楼三层多媒体教室交换机上联" * 4  # 88 characters, 264 bytes


def _row(index: int, name: str, *, in_errors: tuple[int, int] = (65, 0),
         high_speed: tuple[int, int] = (66, 1000), hc_in: int = 1000) -> list[str]:
    """snmprec lines of one interface: OID|type|value (2 Integer, 4x hex string, 65 Counter32,
    66 Gauge32, 70 Counter64)."""
    return [f"{IF}.2.{index}|4x|{name.encode().hex()}",
            f"{IF}.5.{index}|66|1000000000",
            f"{IF}.8.{index}|2|1",
            f"{IF}.14.{index}|{in_errors[0]}|{in_errors[1]}",
            f"{IF}.20.{index}|65|3",
            f"{IFX}.1.{index}|4x|{name.encode().hex()}",
            f"{IFX}.6.{index}|70|{hc_in}",
            f"{IFX}.10.{index}|70|2000",
            f"{IFX}.15.{index}|{high_speed[0]}|{high_speed[1]}"]


def _snmprec(uptime: int, rows: list[list[str]]) -> str:
    lines = [f"1.3.6.1.2.1.1.3.0|67|{uptime}", *(line for row in rows for line in row)]

    def key(line: str) -> tuple[int, ...]:  # snmpsim needs the OIDs in order
        return tuple(int(p) for p in line.split("|", maxsplit=1)[0].split("."))
    return "\n".join(sorted(lines, key=key)) + "\n"


DEVICES = {
    "extreme": _snmprec(2**32 - 1, [
        _row(1, "GE0/0/1", in_errors=(70, U64_MAX), high_speed=(2, -5), hc_in=U64_MAX),
        _row(2, "GE0/0/2", in_errors=(70, 2**63), high_speed=(66, 4294967295))]),
    "normal": _snmprec(360000, [_row(1, "GE0/0/1"), _row(2, "GE0/0/2")]),
    "large": _snmprec(360000, [_row(i, f"{i:04d}-" + LONG_NAME) for i in range(1, 1201)]),
}


@pytest.fixture(scope="module")
def devices() -> Iterator[int]:
    """snmpsimd serving DEVICES, one community each."""
    records = {name: text.encode() for name, text in DEVICES.items()}
    with run_snmpsim(records, ready="normal") as port:
        yield port


def probe(port: int, *names: str) -> SnmpProbe:
    """One probe over the named devices (the community selects the device)."""
    targets = [{"name": n, "host": "127.0.0.1", "port": port, "community_env": n.upper()}
               for n in names]
    return SnmpSettings.model_validate(
        {"type": "snmp", "timeout": "2s", "retries": 1, "max_repetitions": 50,
         "targets": targets}, context={"environ": {n.upper(): n for n in names}}).build()


def ifs(samples: list[Sample], device: str) -> dict[str, dict[str, object]]:
    """netdev_if fields by interface of one device."""
    return {s.tags["ifname"]: dict(s.fields) for s in samples
            if s.kind == "netdev_if" and s.tags["device"] == device}


def test_extreme_values_cost_one_value_not_the_batch(devices: int) -> None:
    """Counter64 2**64-1 in an error column and a negative speed are dropped per value (counted);
    the same device's other fields and the other device's samples all arrive, valid."""
    p = probe(devices, "extreme", "normal")
    samples = p.collect()
    check_samples(samples)  # the batch the scheduler spools is one the collector accepts
    assert [payload for payload, _ in split_by_bytes(samples)]
    extreme, normal = ifs(samples, "extreme"), ifs(samples, "normal")
    assert normal["GE0/0/1"] == {"up": True, "speed_mbps": 1000.0, "in_errors": 0,
                                 "out_errors": 3}
    assert "in_errors" not in extreme["GE0/0/1"]  # 2**64-1 does not fit int64
    assert "in_errors" not in extreme["GE0/0/2"]  # 2**63 neither
    # ifHighSpeed -5 and 2**32-1 Mbit/s are not speeds: ifSpeed's 1 Gbit/s is used instead.
    assert extreme["GE0/0/1"]["speed_mbps"] == 1000.0
    assert extreme["GE0/0/2"]["speed_mbps"] == 1000.0
    assert extreme["GE0/0/1"]["up"] is True and extreme["GE0/0/1"]["out_errors"] == 3
    assert p.guard.dropped == {"netdev_if.in_errors: bad_value: integer out of int64 range": 2}
    speeds = [f["speed_mbps"] for f in (*extreme.values(), *normal.values())]
    assert all(isinstance(v, float) and v > 0 for v in speeds)


def test_a_large_switch_fits_the_wire(devices: int, tmp_path: Path) -> None:
    """1,200 interfaces with Chinese names go through the scheduler into a real spool: every
    batch is within 256 KB with its envelope and decodes on the collector's side, all 1,201
    samples in them."""
    samples = probe(devices, "large").collect()
    assert len(ifs(samples, "large")) == 1200
    spool = Spool(tmp_path / "spool.db", 64 * 2**20, 86400).open()
    try:
        ProbeScheduler([], spool).store("snmp", samples)
        batches = spool.due(100, 0)
    finally:
        spool.close()
    assert sum(len(b.payload) for b in batches) > 500_000  # the 526 KB poll
    assert len(batches) > 2 and sum(b.samples for b in batches) == len(samples)
    who = AgentIdentity("district-1", "school-1", "agent-1")
    for batch in batches:
        envelope = wrap_envelope(who, batch.seq, 1_800_000_000_000, batch.payload)
        assert len(envelope) <= MAX_PAYLOAD_BYTES
        assert len(decode_envelope(envelope).samples) == batch.samples
