"""av with its real checkers: ICMP and TCP on loopback, SNMP against a Net-SNMP snmpd."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.probes.av import AvSettings
from bench.netlab import ShapedLink
from common.wire import Sample, check_samples
from tests.conftest import wait_until
from tests.peers.snmpsim import free_udp_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMMUNITY = "av-test-community"




@dataclass
class Snmpd:
    """A running snmpd and its port."""

    port: int
    proc: subprocess.Popen[bytes]


def snmpget_ok(port: int) -> bool:
    """True when snmpd answers a GET of sysUpTime.0 (Net-SNMP's own client)."""
    out = subprocess.run(["snmpget", "-v2c", "-c", COMMUNITY, "-t", "0.5", "-r", "0", "-On",
                          f"udp:127.0.0.1:{port}", "1.3.6.1.2.1.1.3.0"],
                         capture_output=True, text=True, check=False)
    return out.returncode == 0 and "Timeticks" in out.stdout


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """Net-SNMP snmpd on a free loopback UDP port with its own v2c config (not the system's)."""
    work: Path = tmp_path_factory.mktemp("snmpd")
    port = free_udp_port()
    conf = work / "snmpd.conf"
    conf.write_text(f"agentAddress udp:127.0.0.1:{port}\n"
                    f"rocommunity {COMMUNITY} 127.0.0.1\n"
                    "dontLogTCPWrappersConnects yes\n")
    # -C: only our config; -I -smux: the system snmpd may hold the SMUX port.
    proc = subprocess.Popen(
        [shutil.which("snmpd") or "/usr/sbin/snmpd", "-f", "-C", "-c", str(conf),
         "-I", "-smux", "-Lf", str(work / "snmpd.log"), "-p", str(work / "snmpd.pid")],
        env={"SNMP_PERSISTENT_DIR": str(work), "MIBS": "", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: snmpget_ok(port), 15, "snmpd to answer")
        yield Snmpd(port, proc)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def listener() -> Iterator[int]:
    """A listening TCP port (an RDP-like service)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def closed_port() -> int:
    """A loopback TCP port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collect(devices: list[dict[str, object]], environ: dict[str, str] | None = None,
            timeout: str = "2s") -> dict[str, Sample]:
    """Build the probe from settings (the production wiring) and collect once."""
    probe = AvSettings.model_validate(
        {"type": "av", "device_timeout": timeout, "devices": devices},
        context={"environ": environ or {}}).build()
    samples = probe.collect()
    check_samples(samples)
    return {s.tags["device"]: s for s in samples}


def dev(name: str, method: str, device_type: str = "other", **extra: object) -> dict[str, object]:
    """One device entry in classroom 301 on loopback."""
    return {"name": name, "classroom": "301", "device_type": device_type, "host": "127.0.0.1",
            "method": method, **extra}


def test_snmp_sysuptime_from_real_snmpd(snmpd: Snmpd) -> None:
    """A GET of sysUpTime.0 with the community from the environment: online, uptime."""
    samples = collect([dev("spk-1", "snmp", "speaker", port=snmpd.port,
                           community_env="C")], {"C": COMMUNITY})
    fields = samples["spk-1"].fields
    assert fields["online"] is True
    assert isinstance(fields["uptime_s"], int) and 0 <= fields["uptime_s"] < 3600
    assert samples["spk-1"].tags == {"device": "spk-1", "classroom": "301",
                                     "device_type": "speaker"}


def test_snmp_wrong_community_and_no_agent_are_offline(snmpd: Snmpd) -> None:
    """snmpd ignores a wrong community; nobody answers on a dead port: both offline, in
    about the device timeout, concurrently."""
    started = time.monotonic()
    samples = collect([dev("wrong", "snmp", port=snmpd.port, community_env="C"),
                       dev("dead", "snmp", port=free_udp_port(), community_env="C")],
                      {"C": "not-the-community"}, timeout="1s")
    elapsed = time.monotonic() - started
    assert samples["wrong"].fields == {"online": False}
    assert samples["dead"].fields == {"online": False}
    assert elapsed < 2.0


def test_icmp_tcp_devices_on_loopback(listener: int) -> None:
    """Panel by ICMP, PC by TCP 'RDP': online with an RTT; a closed port: offline."""
    samples = collect([dev("panel-301", "icmp", "panel"),
                       dev("pc-301", "tcp", "pc", port=listener),
                       dev("pc-302", "tcp", "pc", port=closed_port())])
    assert samples["panel-301"].fields["online"] is True
    assert 0 < float(samples["panel-301"].fields["rtt_ms"]) < 100
    assert samples["pc-301"].fields["online"] is True
    assert samples["pc-302"].fields == {"online": False}


AV_IN_NS = """
import json, sys, time
from agent.probes.av import AvSettings
from bench.netlab import ShapedLink
probe = AvSettings.model_validate(json.loads(sys.argv[1]), context={"environ": {"C": "x"}}).build()
t = time.monotonic()
samples = probe.collect()
print(json.dumps({"elapsed": time.monotonic() - t,
                  "fields": {s.tags["device"]: s.fields for s in samples}}))
"""


def test_unreachable_and_unresolvable_devices_are_offline() -> None:
    """Across a veth link, an address nobody holds (no ARP answer) by every method, and a name
    that does not resolve: offline, no exception, all within one device timeout; the live
    host on the same link is online."""
    with ShapedLink(100) as link:
        dead = link.server_ip.rsplit(".", 1)[0] + ".99"
        devices = [{**dev("panel-live", "icmp", "panel"), "host": link.server_ip},
                   {**dev("panel-x", "icmp", "panel"), "host": dead},
                   {**dev("pc-x", "tcp", "pc", port=3389), "host": dead},
                   {**dev("proj-x", "pjlink", "projector"), "host": dead},
                   {**dev("spk-x", "snmp", "speaker", community_env="C"), "host": dead},
                   {**dev("pc-y", "tcp", "pc", port=3389), "host": "no-such-host.invalid"}]
        settings = {"type": "av", "device_timeout": "1s", "devices": devices}
        out = subprocess.run(link.command(link.client_ns, [sys.executable, "-c", AV_IN_NS,
                                                           json.dumps(settings)]),
                             capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    result = json.loads(out.stdout)
    fields = result["fields"]
    assert fields.pop("panel-live")["online"] is True
    assert fields == {name: {"online": False}
                      for name in ("panel-x", "pc-x", "proj-x", "spk-x", "pc-y")}
    assert result["elapsed"] < 1.8


def test_pjlink_projector_from_the_pjlink_peer() -> None:
    """The real PJLink client against the protocol-faithful projector peer: with password,
    lamp hours and error status; a wrong password is online without status."""
    from tests.peers.pjlink_server import ProjectorState, pjlink_server

    state = ProjectorState(power="1", errors="020100", lamps=[(1500, True), (2100, False)])
    with pjlink_server(state, password="JBMIAProjectorLink") as projector:
        devices = [dev("proj-301", "pjlink", "projector", port=projector.port,
                       password_env="PJ")]
        good = collect(devices, {"PJ": "JBMIAProjectorLink"})["proj-301"]
        wrong = collect(devices, {"PJ": "not-the-password"})["proj-301"]
    assert good.fields == {"online": True, "power": "on", "lamp_hours": 2100, "err_fan": 0,
                           "err_lamp": 2, "err_temp": 0, "err_cover": 1, "err_filter": 0,
                           "err_other": 0}
    assert good.tags["device_type"] == "projector"
    assert wrong.fields == {"online": True}


def test_pjlink_silent_projector_is_offline_within_timeout() -> None:
    """A projector that accepts and never greets: offline after the device timeout."""
    from tests.peers.pjlink_server import Faults, pjlink_server

    with pjlink_server(faults=Faults(silent=True)) as projector:
        started = time.monotonic()
        sample = collect([dev("proj-302", "pjlink", "projector", port=projector.port)],
                         timeout="500ms")["proj-302"]
        elapsed = time.monotonic() - started
    assert sample.fields == {"online": False}
    assert 0.45 <= elapsed < 1.5
