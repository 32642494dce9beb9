"""The SNMP probe against real agents: Net-SNMP snmpd (this machine's interfaces, v2c and v3)
and snmpsimd serving recorded walks and the AP-controller tables in tests/fixtures/snmp/."""

from __future__ import annotations

import gzip
import logging
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from agent.probes.snmp import SnmpProbe, SnmpSettings
from common.wire import Sample, check_samples
from tests.conftest import wait_until
from tests.peers.snmpsim import answers, free_udp_port, run_snmpsim

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "snmp"
RECORDED = Path("/usr/share/doc/snmpsim/examples/data/recorded")
AP_CASES = sorted(p.name for p in FIXTURES.glob("ap_*") if p.is_dir())






@dataclass
class Snmpd:
    """A Net-SNMP agent on a loopback port with a temporary config and persistent dir."""

    port: int
    env: dict[str, str]  # the secrets, as the probe's settings read them
    proc: subprocess.Popen[bytes] | None = None
    dir: Path = Path()

    def start(self) -> None:
        """Start (again) and wait until it answers."""
        log = (self.dir / "snmpd.out").open("ab")
        self.proc = subprocess.Popen(
            ["snmpd", "-C", "-c", str(self.dir / "snmpd.conf"), "-p", str(self.dir / "pid"),
             "-Lf", str(self.dir / "snmpd.log"), "-f", "-M", "/nonexistent", "-m", "",
             f"udp:127.0.0.1:{self.port},udp6:[::1]:{self.port}"],
            stdout=log, stderr=log,
            env={**os.environ, "SNMP_PERSISTENT_DIR": str(self.dir / "persist")})
        wait_until(lambda: answers(self.port, self.env["COMMUNITY"]), 20, "snmpd to answer")

    def stop(self) -> None:
        """Stop and wait for the exit."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def new_snmpd(directory: Path) -> Snmpd:
    """An snmpd with a v2c community, an authPriv (SHA/AES) and an authNoPriv (SHA) user."""
    env = {"COMMUNITY": secrets.token_hex(8), "AUTH": secrets.token_hex(8),
           "PRIV": secrets.token_hex(8), "AUTH2": secrets.token_hex(8),
           "WRONG": secrets.token_hex(8)}
    (directory / "persist").mkdir(parents=True)
    (directory / "snmpd.conf").write_text(
        f"rocommunity {env['COMMUNITY']} 127.0.0.1\nrocommunity6 {env['COMMUNITY']} ::1\n"
        f'createUser monpriv SHA "{env["AUTH"]}" AES "{env["PRIV"]}"\n'
        f'createUser monauth SHA "{env["AUTH2"]}"\n'
        "rouser monpriv priv\nrouser monauth auth\n"
        "dontLogTCPWrappersConnects yes\n")
    snmpd = Snmpd(free_udp_port(), env, dir=directory)
    snmpd.start()
    return snmpd


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """One snmpd for the module."""
    agent = new_snmpd(tmp_path_factory.mktemp("snmpd"))
    yield agent
    agent.stop()


@pytest.fixture(scope="module")
def snmpsim() -> Iterator[int]:
    """snmpsimd serving the recorded Linux and Windows XP walks and the AP fixtures."""
    records = {}
    for name in ("linux-full-walk", "winxp-full-walk"):
        with gzip.open(RECORDED / f"{name}.snmprec.gz") as src:
            records[name] = src.read()
    for case in AP_CASES:
        records[case] = (FIXTURES / case / "controller.snmprec").read_bytes()
    with run_snmpsim(records, ready="linux-full-walk") as port:
        yield port


def probe(env: dict[str, str], *targets: dict[str, object], **over: object) -> SnmpProbe:
    """A probe built the production way, from settings, with secrets from ``env``."""
    settings = {"type": "snmp", "timeout": "1s", "retries": 1, "targets": list(targets), **over}
    return SnmpSettings.model_validate(settings, context={"environ": env}).build()


def collect(p: SnmpProbe) -> list[Sample]:
    """One poll; everything it returns is valid on the wire."""
    samples = p.collect()
    check_samples(samples)
    return samples


def netdev(samples: list[Sample], device: str) -> dict[str, object]:
    """The netdev fields of ``device``."""
    [s] = [s for s in samples if s.kind == "netdev" and s.tags["device"] == device]
    assert s.tags["source"] == "snmp"
    return dict(s.fields)


def ifaces(samples: list[Sample], device: str) -> dict[str, dict[str, object]]:
    """netdev_if fields by interface name."""
    return {s.tags["ifname"]: dict(s.fields) for s in samples
            if s.kind == "netdev_if" and s.tags["device"] == device}


def loopback_traffic(nbytes: int) -> None:
    """Send ``nbytes`` through a TCP connection on 127.0.0.1 (counted by lo twice: in and out)."""
    server = socket.create_server(("127.0.0.1", 0))
    got = 0

    def sink() -> None:
        nonlocal got
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                got += len(chunk)

    t = threading.Thread(target=sink)
    t.start()
    with socket.create_connection(server.getsockname()) as c:
        c.sendall(b"\0" * nbytes)
    t.join(10)
    server.close()
    assert got == nbytes


def lo_in_octets(agent: Snmpd) -> int:
    """ifHCInOctets of lo, read with Net-SNMP's snmpwalk."""
    def walk(oid: str) -> list[str]:
        return subprocess.run(["snmpwalk", "-v2c", "-c", agent.env["COMMUNITY"], "-Oqv",
                               f"127.0.0.1:{agent.port}", oid],
                              capture_output=True, text=True, check=True).stdout.split()

    names = [n.strip('"') for n in walk("1.3.6.1.2.1.31.1.1.1.1")]
    return int(walk("1.3.6.1.2.1.31.1.1.1.6")[names.index("lo")])


V2C = {"version": "2c", "community_env": "COMMUNITY"}
V3_PRIV = {"version": "3", "user": "monpriv", "auth_protocol": "sha", "auth_key_env": "AUTH",
           "priv_protocol": "aes", "priv_key_env": "PRIV"}
V3_AUTH = {"version": "3", "user": "monauth", "auth_key_env": "AUTH2"}


@pytest.mark.parametrize("creds", [V2C, V3_PRIV, V3_AUTH],
                         ids=["v2c", "v3-authPriv", "v3-authNoPriv"])
def test_reads_this_machines_loopback_and_measures_traffic(snmpd: Snmpd,
                                                           creds: dict[str, object]) -> None:
    """lo as snmpd reports it: up, 10 Mbit/s, no errors; after traffic, a rate at least that."""
    p = probe(snmpd.env, {"name": "this-host", "host": "127.0.0.1", "port": snmpd.port, **creds})
    started = time.monotonic()
    first = collect(p)
    assert netdev(first, "this-host")["up"] is True
    assert 0 <= int(netdev(first, "this-host")["uptime_s"]) < 3600  # type: ignore[call-overload]
    lo = ifaces(first, "this-host")["lo"]
    assert lo["up"] is True and lo["speed_mbps"] == 10.0
    assert lo["in_errors"] == 0 and lo["out_errors"] == 0
    assert "in_bps" not in lo and "out_bps" not in lo  # first poll: no rate
    # The interface names are the ones Net-SNMP's own client walks.
    walk = subprocess.run(["snmpwalk", "-v2c", "-c", snmpd.env["COMMUNITY"], "-Oqv",
                           f"127.0.0.1:{snmpd.port}", "1.3.6.1.2.1.31.1.1.1.1"],
                          capture_output=True, text=True, check=True).stdout
    assert set(ifaces(first, "this-host")) == {n.strip('"') for n in walk.split()}

    sent = 8 << 20
    before = lo_in_octets(snmpd)
    loopback_traffic(sent)
    # snmpd caches interface counters for a few seconds: wait until its answer has the traffic.
    wait_until(lambda: lo_in_octets(snmpd) >= before + sent, 15, "snmpd to count the traffic")
    second = collect(p)
    elapsed = time.monotonic() - started  # longer than the probe's own interval: a lower bound
    lo = ifaces(second, "this-host")["lo"]
    assert isinstance(lo["in_bps"], float) and isinstance(lo["out_bps"], float)
    assert lo["in_bps"] >= sent * 8 / elapsed and lo["out_bps"] >= sent * 8 / elapsed
    assert lo["in_bps"] < 1e12


def test_ipv6_host(snmpd: Snmpd) -> None:
    """A target on an IPv6 address is polled over UDP/IPv6."""
    p = probe(snmpd.env, {"name": "v6", "host": "::1", "port": snmpd.port, **V2C})
    samples = collect(p)
    assert netdev(samples, "v6")["up"] is True and "lo" in ifaces(samples, "v6")


def test_wrong_credentials_name_the_device_and_report_it_down(
        snmpd: Snmpd, caplog: pytest.LogCaptureFixture) -> None:
    """Wrong community, auth key and priv key: netdev up=false and a clear line per device."""
    base = {"host": "127.0.0.1", "port": snmpd.port}
    p = probe(snmpd.env,
              {"name": "bad-community", **base, "version": "2c", "community_env": "WRONG"},
              {"name": "bad-authkey", **base, **V3_AUTH, "auth_key_env": "WRONG"},
              {"name": "bad-privkey", **base, **V3_PRIV, "priv_key_env": "WRONG"},
              {"name": "good", **base, **V3_PRIV})
    with caplog.at_level(logging.WARNING, logger="agent.probes.snmp"):
        samples = collect(p)
    for name in ("bad-community", "bad-authkey", "bad-privkey"):
        assert netdev(samples, name) == {"up": False}
        assert not ifaces(samples, name)
    assert netdev(samples, "good")["up"] is True and ifaces(samples, "good")
    lines = {r.getMessage().split()[2]: r.getMessage() for r in caplog.records}
    assert set(lines) == {"bad-community", "bad-authkey", "bad-privkey"}
    assert "wrong community?" in lines["bad-community"]
    assert "authentication failed for user monauth" in lines["bad-authkey"]
    assert "wrong priv_key" in lines["bad-privkey"]
    assert f"127.0.0.1:{snmpd.port}" in lines["bad-community"]
    for secret in snmpd.env.values():  # never a secret in a log line
        assert all(secret not in line for line in lines.values())


def uptime_ticks(port: int, community: str) -> int:
    """sysUpTime as Net-SNMP's snmpget reads it (0 when there is no answer)."""
    out = subprocess.run(["snmpget", "-v2c", "-c", community, "-r0", "-t0.5", "-Oqvt",
                          f"127.0.0.1:{port}", "1.3.6.1.2.1.1.3.0"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


def test_agent_restart_gives_no_rate_then_rates_again(tmp_path: Path) -> None:
    """snmpd restarted between polls (sysUpTime went back): no rate, then rates again."""
    agent = new_snmpd(tmp_path)
    community = agent.env["COMMUNITY"]
    try:
        p = probe(agent.env, {"name": "sw", "host": "127.0.0.1", "port": agent.port, **V2C})
        assert "in_bps" not in ifaces(collect(p), "sw")["lo"]
        wait_until(lambda: uptime_ticks(agent.port, community) >= 300, 10, "3 s of uptime")
        before = collect(p)
        assert "in_bps" in ifaces(before, "sw")["lo"]
        agent.stop()
        assert netdev(collect(p), "sw") == {"up": False}
        agent.start()
        after = collect(p)
        # It went back (0 or 1 s, depending on how long the restart took on a loaded machine).
        assert netdev(after, "sw")["uptime_s"] < netdev(before, "sw")["uptime_s"]
        assert "in_bps" not in ifaces(after, "sw")["lo"]  # counters may have reset with it
        assert "in_bps" in ifaces(collect(p), "sw")["lo"]
    finally:
        agent.stop()


@pytest.mark.parametrize("case", AP_CASES)
def test_ap_tables_of_wireless_controllers(snmpsim: int, case: str) -> None:
    """Each controller's AP table parses to its expected.json (missing expected APs offline)."""
    expected = orjson.loads((FIXTURES / case / "expected.json").read_bytes())
    p = probe({"C": case}, {"name": case.replace("_", "-"), "host": "127.0.0.1",
                            "port": snmpsim, "community_env": "C", **expected["target"]})
    samples = collect(p)
    assert netdev(samples, case.replace("_", "-"))["up"] is True
    aps = [{"ap": s.tags["ap"], **s.fields} for s in samples if s.kind == "ap"]
    assert all(s.tags["controller"] == case.replace("_", "-") for s in samples if s.kind == "ap")
    assert aps == expected["aps"]


@pytest.mark.parametrize(("walk", "expected"), [
    ("linux-full-walk", {"lo": {"up": True, "speed_mbps": 10.0, "in_errors": 0, "out_errors": 0},
                         "eth0": {"up": True, "speed_mbps": 100.0, "in_errors": 0,
                                  "out_errors": 0}}),
    # No ifXTable: names from ifDescr (C strings with their NUL), 32-bit counters.
    ("winxp-full-walk", {
        "MS TCP Loopback interface": {"up": True, "speed_mbps": 10.0, "in_errors": 0,
                                      "out_errors": 0},
        "Intel(R) PRO/Wireless 2200BG Network Connection": {
            "up": True, "speed_mbps": 54.0, "in_errors": 0, "out_errors": 0},
        "Bluetooth Device (Personal Area Network)": {"up": False, "speed_mbps": 1.0,
                                                     "in_errors": 0, "out_errors": 0}}),
])
def test_recorded_walks(snmpsim: int, walk: str, expected: dict[str, dict[str, object]]) -> None:
    """Recorded real agents: interfaces as expected; the frozen counters give 0.0 on poll two."""
    p = probe({"C": walk}, {"name": "rec", "host": "127.0.0.1", "port": snmpsim,
                            "community_env": "C"})
    first = collect(p)
    assert ifaces(first, "rec") == expected
    second = ifaces(collect(p), "rec")
    assert {n: (f["in_bps"], f["out_bps"]) for n, f in second.items()} == {
        n: (0.0, 0.0) for n in expected}


def test_dead_device_does_not_delay_a_live_one(snmpsim: int) -> None:
    """A port with nothing listening costs its own timeout x tries; the live one is done first."""
    p = probe({"C": "linux-full-walk"},
              {"name": "live", "host": "127.0.0.1", "port": snmpsim, "community_env": "C"},
              {"name": "dead", "host": "127.0.0.1", "port": free_udp_port(),
               "community_env": "C"},
              timeout="1.5s", retries=1)
    start = time.monotonic()
    samples = collect(p)
    total = time.monotonic() - start
    live, dead = p.finished_at["live"] - start, p.finished_at["dead"] - start
    assert netdev(samples, "live")["up"] is True and netdev(samples, "dead") == {"up": False}
    assert live < 1.5  # within one request timeout, not after the dead one's 3 s
    assert 3.0 <= dead < 4.0 and total < 4.0
    print(f"live done after {live:.2f}s, dead after {dead:.2f}s")


def test_two_probes_in_two_threads_at_once(snmpsim: int) -> None:
    """Two snmp entries run by the scheduler's thread pool at the same time do not mix."""
    expected = {case: orjson.loads((FIXTURES / case / "expected.json").read_bytes())
                for case in AP_CASES}
    probes = [probe({"C": case}, {"name": "ac", "host": "127.0.0.1", "port": snmpsim,
                                  "community_env": "C", **expected[case]["target"]})
              for case in AP_CASES]
    with ThreadPoolExecutor(len(probes)) as pool:
        results = list(pool.map(lambda p: [collect(p) for _ in range(3)], probes))
    for case, polls in zip(AP_CASES, results, strict=True):
        for samples in polls:
            got = [{"ap": s.tags["ap"], **s.fields} for s in samples if s.kind == "ap"]
            assert got == expected[case]["aps"]
