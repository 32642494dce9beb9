"""The SNMP probe's logic over polls (rates, restarts, failures) with an injected session, and
its settings.  The real transport against real agents is in tests/integration/test_snmp.py."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.probes.snmp import SnmpProbe, SnmpSession, SnmpSettings, SnmpTargetSettings
from agent.probes.snmp_parsers import SnmpError, Value, VarBind
from agent.probes.snmp_parsers.aptables import AP_TABLES
from agent.probes.snmp_parsers.ifmib import IF_COLUMNS, SYS_UPTIME
from common.wire import FieldValue, Sample, check_samples

T0_MS = 1_763_890_000_000
ENV = {"C": "public-ish", "A": "authkey-123", "P": "privkey-456", "SHORT": "abc"}


@dataclass
class Device:
    """What one device answers at one poll: uptime ticks, interface counters, AP rows."""

    ticks: int | None = 100_000
    # ifIndex -> (name, HC in, HC out); None: no HC counters (ifIn/OutOctets only)
    ifs: dict[int, tuple[str, int | None, int | None]] = field(default_factory=dict)
    down: bool = False
    failing_columns: set[str] = field(default_factory=set)
    aps: dict[str, tuple[bytes, int, int]] | None = None  # huawei index -> (name, state, users)


class Replay:
    """A session answering from one scripted Device per target name (per poll)."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}

    def factory(self) -> Callable[[], AbstractAsyncContextManager[SnmpSession]]:
        """The session factory the probe takes."""
        @asynccontextmanager
        async def open_session() -> AsyncIterator[SnmpSession]:
            yield self

        return open_session

    def _device(self, target: SnmpTargetSettings) -> Device:
        dev = self.devices[target.name]
        if dev.down:
            raise SnmpError("no answer in 1s x 3 tries")
        return dev

    async def get(self, target: SnmpTargetSettings, oids: Sequence[str]) -> list[VarBind]:
        """sysUpTime."""
        dev = self._device(target)
        return [(SYS_UPTIME, dev.ticks)]

    async def walk(self, target: SnmpTargetSettings, column: str) -> list[VarBind]:
        """One column of the scripted tables."""
        dev = self._device(target)
        await asyncio.sleep(0)
        if column in dev.failing_columns:
            raise SnmpError("no answer in 1s x 3 tries")
        out: list[VarBind] = []
        for index, (ifname, hc_in, hc_out) in sorted(dev.ifs.items()):
            values: dict[str, Value] = {
                      "ifName": ifname.encode(), "ifOperStatus": 1, "ifHighSpeed": 1000,
                      "ifInErrors": 1, "ifOutErrors": 2, "ifHCInOctets": hc_in,
                      "ifHCOutOctets": hc_out,
                      # Without HC counters the 32-bit ones say 200000: more than the HC
                      # values before them, so only the width check keeps them apart.
                      "ifInOctets": (200_000 if hc_in is None else hc_in) % 2**32,
                      "ifOutOctets": (200_000 if hc_out is None else hc_out) % 2**32}
            for key, oid in IF_COLUMNS.items():
                if oid == column and values.get(key) is not None:
                    out.append((f"{oid}.{index}", values[key]))
        table = AP_TABLES["huawei"]
        for ap_index, (name, state, users) in (dev.aps or {}).items():
            cells: list[tuple[str | None, Value]] = [
                (table.name_oid, name), (table.state_oid, state), (table.clients_oid, users)]
            out += [(f"{oid}.{ap_index}", value) for oid, value in cells if oid == column]
        return out


class Clock:
    """Monotonic seconds the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(targets: Sequence[Mapping[str, object]],
         **over: object) -> tuple[SnmpProbe, Replay, Clock]:
    """A probe on a Replay session and a test clock."""
    settings = SnmpSettings.model_validate(
        {"type": "snmp", "targets": targets, **over}, context={"environ": ENV})
    replay, clock = Replay(), Clock()
    probe = SnmpProbe(settings, replay.factory(), monotonic=clock,
                      now_ms=lambda: T0_MS + int(clock.now * 1000))
    return probe, replay, clock


SW = {"name": "core-sw", "host": "192.0.2.2", "community_env": "C"}


def poll(probe: SnmpProbe) -> dict[tuple[str, str], dict[str, FieldValue]]:
    """One collect; fields by (kind, device/ap/ifname)."""
    samples: list[Sample] = probe.collect()
    check_samples(samples)
    out = {}
    for s in samples:
        key = s.tags.get("ifname") or s.tags.get("ap") or s.tags["device"]
        out[(s.kind, key)] = dict(s.fields)
    return out


def test_rates_from_the_second_poll_with_wraps_and_restart() -> None:
    """First poll: no rate; then rates; a 32-bit wrap; a restart: none; then rates again."""
    probe, replay, clock = make([SW])
    replay.devices["core-sw"] = Device(ticks=100_000, ifs={1: ("ge1", 1_000, 2_000),
                                                           2: ("old", None, None)})
    first = poll(probe)
    assert first[("netdev", "core-sw")] == {"up": True, "uptime_s": 1000}
    assert first[("netdev_if", "ge1")] == {"up": True, "speed_mbps": 1000.0, "in_errors": 1,
                                           "out_errors": 2}
    clock.now += 10
    replay.devices["core-sw"] = Device(ticks=101_000, ifs={1: ("ge1", 126_000, 2_000),
                                                           2: ("old", None, None)})
    second = poll(probe)
    assert (second[("netdev_if", "ge1")]["in_bps"], second[("netdev_if", "ge1")]["out_bps"]) \
        == (100_000.0, 0.0)
    assert second[("netdev_if", "old")]["in_bps"] == 0.0  # 32-bit counters work too
    clock.now += 10
    # The HC counters vanished this poll: 32-bit ones (wrapped values) are not compared with 64.
    replay.devices["core-sw"] = Device(ticks=102_000, ifs={1: ("ge1", None, None)})
    assert "in_bps" not in poll(probe)[("netdev_if", "ge1")]
    clock.now += 10
    replay.devices["core-sw"] = Device(ticks=500, ifs={1: ("ge1", 10, 20)})  # rebooted
    after = poll(probe)
    assert "in_bps" not in after[("netdev_if", "ge1")]
    assert after[("netdev", "core-sw")]["uptime_s"] == 5
    clock.now += 10
    replay.devices["core-sw"] = Device(ticks=1_500, ifs={1: ("ge1", 1_260, 20)})
    assert poll(probe)[("netdev_if", "ge1")]["in_bps"] == 1_000.0


def test_a_dead_device_is_down_logged_once_and_others_still_report(
        caplog: pytest.LogCaptureFixture) -> None:
    """netdev up=false and one log line naming it (not one per poll); recovery is logged."""
    probe, replay, clock = make([SW, {**SW, "name": "edge-sw", "host": "192.0.2.3"}])
    replay.devices["core-sw"] = Device(down=True)
    replay.devices["edge-sw"] = Device(ifs={1: ("ge1", 1, 1)})
    with caplog.at_level(logging.INFO, logger="agent.probes.snmp"):
        for _ in range(3):
            out = poll(probe)
            clock.now += 60
        assert out[("netdev", "core-sw")] == {"up": False}
        assert ("netdev_if", "ge1") in out and out[("netdev", "edge-sw")]["up"] is True
        replay.devices["core-sw"] = Device()
        assert poll(probe)[("netdev", "core-sw")]["up"] is True
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["snmp device core-sw (192.0.2.2:161) not polled: no answer in 1s x 3 tries",
                     "snmp device core-sw (192.0.2.2:161) answers again"]


def test_a_failed_column_costs_only_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    """A walk that fails after the device answered: logged, the rest still reported."""
    probe, replay, _ = make([SW])
    replay.devices["core-sw"] = Device(ifs={1: ("ge1", 1, 1)},
                                       failing_columns={IF_COLUMNS["ifInErrors"]})
    with caplog.at_level(logging.WARNING, logger="agent.probes.snmp"):
        out = poll(probe)
    assert out[("netdev", "core-sw")]["up"] is True
    assert out[("netdev_if", "ge1")] == {"up": True, "speed_mbps": 1000.0, "out_errors": 2}
    assert "core-sw" in caplog.text and "ifInErrors" in caplog.text


AC = {"name": "ac-1", "host": "192.0.2.9", "version": "3", "user": "mon", "auth_key_env": "A",
      "priv_key_env": "P", "ap_table": "huawei", "interfaces": False,
      "aps": ["AP-1", "AP-2", "AP-3"]}


def test_aps_with_expected_ones_and_a_half_read_table(caplog: pytest.LogCaptureFixture) -> None:
    """AP samples; an expected AP absent is offline; a failed AP walk reports no AP at all."""
    probe, replay, _ = make([AC])
    replay.devices["ac-1"] = Device(aps={"1.2.3.4.5.6": (b"AP-1", 8, 7),
                                         "1.2.3.4.5.7": (b"AP-2", 4, 0)})
    out = poll(probe)
    assert {k: v for k, v in out.items() if k[0] == "ap"} == {
        ("ap", "AP-1"): {"online": True, "clients": 7},
        ("ap", "AP-2"): {"online": False, "clients": 0},
        ("ap", "AP-3"): {"online": False, "clients": 0}}
    assert not [k for k in out if k[0] == "netdev_if"]  # interfaces: false
    replay.devices["ac-1"].failing_columns = {AP_TABLES["huawei"].state_oid}
    with caplog.at_level(logging.WARNING, logger="agent.probes.snmp"):
        out = poll(probe)
    assert not [k for k in out if k[0] == "ap"]  # not "every AP offline"
    assert out[("netdev", "ac-1")]["up"] is True and "ac-1" in caplog.text


def test_build_wires_pysnmp_and_keeps_secrets_out_of_dumps() -> None:
    """build() gives the pysnmp-backed probe; secrets never in repr or model_dump."""
    settings = SnmpSettings.model_validate({"type": "snmp", "targets": [SW, AC]},
                                           context={"environ": ENV})
    assert isinstance(settings.build(), SnmpProbe)
    assert settings.timeout == 3.0 and settings.retries == 2  # per request
    assert settings.run_timeout() == 60.0  # a whole poll: the interval, not 3 s
    for secret in ENV.values():
        assert secret not in repr(settings) and secret not in str(settings.model_dump())
    assert settings.targets[1].security_level == "authPriv"


@pytest.mark.parametrize(("target", "error"), [
    ({"name": "x", "host": "h"}, "version 2c needs community_env or community_file"),
    ({"name": "x", "host": "h", "version": "3"}, "version 3 needs user"),
    ({"name": "x", "host": "h", "version": 3, "user": "u", "priv_key_env": "P"},
     "priv_key needs auth_key too"),
    ({"name": "x", "host": "h", "version": "3", "user": "u", "auth_key_env": "SHORT"},
     "at least 8 characters"),
    ({"name": "x", "host": "h", "community_env": "C", "user": "u"}, "user is for version 3"),
    ({"name": "x", "host": "h", "version": "3", "user": "u", "community_env": "C"},
     "community is for version 2c"),
    ({"name": "x", "host": "h", "community_env": "NOPE"}, "NOPE is not set"),
    ({"name": "x", "host": "h", "community_env": "C", "ap_table": "aruba"}, "'huawei', 'h3c'"),
    ({"name": "a\\b", "host": "h", "community_env": "C"}, "(?s)name.*should match pattern"),
    ({"name": "x", "host": "h", "community_env": "C", "auth_protocol": "sha1"}, "'md5', 'sha'"),
])
def test_bad_targets_are_config_errors(target: dict[str, object], error: str) -> None:
    """Each mistake is a validation error that says what is wrong."""
    with pytest.raises(ValidationError, match=error):
        SnmpSettings.model_validate({"type": "snmp", "targets": [target]},
                                    context={"environ": ENV})


def test_target_names_are_unique_and_v3_versions_coerce() -> None:
    """Two targets with one name are refused; ``version: 3`` (a YAML int) means "3"."""
    with pytest.raises(ValidationError, match="duplicate target name 'core-sw'"):
        SnmpSettings.model_validate({"type": "snmp", "targets": [SW, SW]},
                                    context={"environ": ENV})
    ok = SnmpSettings.model_validate({"type": "snmp", "targets": [{**AC, "version": 3}]},
                                     context={"environ": ENV})
    assert ok.targets[0].version == "3"
    assert ok.request_timeout(ok.targets[0]) == 3.0


def test_per_target_timeout_and_retries_override() -> None:
    """A target's own timeout/retries win over the probe's."""
    s = SnmpSettings.model_validate(
        {"type": "snmp", "timeout": "2s", "retries": 1,
         "targets": [SW, {**SW, "name": "far", "timeout": "5s", "retries": 0}]},
        context={"environ": ENV})
    assert [(s.request_timeout(t), s.request_retries(t)) for t in s.targets] == [(2.0, 1),
                                                                                  (5.0, 0)]


def test_loading_the_settings_does_not_import_pysnmp() -> None:
    """An agent config with an snmp entry is validated without loading pysnmp (57 MB)."""
    code = ("import sys\nfrom agent.probes.snmp import SnmpSettings\n"
            "SnmpSettings.model_validate({'type': 'snmp', 'targets': [{'name': 'x', 'host': 'h',"
            " 'community_env': 'C'}]}, context={'environ': {'C': 'c'}})\n"
            "assert not [m for m in sys.modules if m.startswith(('pysnmp', 'pyasn1'))]\n")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[2])
