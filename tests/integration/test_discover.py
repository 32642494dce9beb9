"""discover on a classroom LAN made of namespaces: a scanner and three hosts on one bridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.probes.av import AvSettings
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RESPONDER = ROOT / "tests" / "peers" / "pjlink_search_responder.py"


def run(*args: str) -> str:
    """Run a command, fail loudly."""
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


class ClassroomLan:
    """Namespace ``scanner`` (address .1) owns bridge br0; each host is a namespace with a veth
    whose peer is a port of that bridge: one Ethernet segment, every host its own MAC."""

    def __init__(self, hosts: list[str]) -> None:
        tag = f"{os.getpid() % 100000}"
        self.prefix = f"10.253.{os.getpid() % 200 + 10}"
        self.scanner = f"smDsc{tag}"
        self.hosts = {name: f"smD{name[:3]}{tag}" for name in hosts}
        self.ips = {name: f"{self.prefix}.{10 + i}" for i, name in enumerate(hosts)}
        self.macs: dict[str, str] = {}
        self.procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> ClassroomLan:
        try:
            run("ip", "netns", "add", self.scanner)
            run("ip", "-n", self.scanner, "link", "add", "br0", "type", "bridge")
            run("ip", "-n", self.scanner, "addr", "add", f"{self.prefix}.1/24", "dev", "br0")
            for ns in (self.scanner,):
                run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", self.scanner, "link", "set", "br0", "up")
            for i, (name, ns) in enumerate(self.hosts.items()):
                run("ip", "netns", "add", ns)
                run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name",
                    f"port{i}", "netns", self.scanner)
                run("ip", "-n", self.scanner, "link", "set", f"port{i}", "master", "br0", "up")
                run("ip", "-n", ns, "addr", "add", f"{self.ips[name]}/24", "dev", "eth0")
                run("ip", "-n", ns, "link", "set", "eth0", "up")
                run("ip", "-n", ns, "link", "set", "lo", "up")
                link = json.loads(run("ip", "-n", ns, "-j", "link", "show", "dev", "eth0"))
                self.macs[name] = link[0]["address"]
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, host: str, argv: list[str]) -> None:
        """Run ``argv`` in the host's namespace until the LAN closes; it prints 'ready'."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.hosts[host], *argv],
                                stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"

    def close(self) -> None:
        """Stop the services and delete every namespace (the veths go with them)."""
        for proc in self.procs:
            proc.terminate()
            proc.wait(10)
        for ns in [self.scanner, *self.hosts.values()]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


LISTEN = """
import socket, sys
s = socket.socket(); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
print("ready", flush=True)
while True:
    s.accept()[0].close()
"""

DISCOVER = """
import argparse, sys
from agent.discover import cmd_agent_discover
sys.exit(cmd_agent_discover(argparse.Namespace(subnet=sys.argv[1], timeout=2.0)))
"""


@pytest.fixture(scope="module")
def lan() -> Iterator[ClassroomLan]:
    """A projector (PJLink search responder), a PC (RDP port open) and a panel (nothing)."""
    with ClassroomLan(["projector", "pc", "panel"]) as lan:
        lan.start("projector", [sys.executable, str(RESPONDER), lan.macs["projector"]])
        lan.start("pc", [sys.executable, "-c", LISTEN, "3389"])
        ping = ("import sys; from agent.probes.reach import icmp_echo; "
                "sys.exit(not icmp_echo(sys.argv[1], 1, 1.0).up)")
        wait_until(lambda: subprocess.run(
            ["ip", "netns", "exec", lan.scanner, sys.executable, "-c", ping, lan.ips["panel"]],
            capture_output=True, check=False, cwd=ROOT).returncode == 0, 10,
            "the bridge to forward")
        yield lan


def discover_in_scanner(lan: ClassroomLan, subnet: str) -> subprocess.CompletedProcess[str]:
    """`schoolmon agent discover` (its CLI function) run inside the scanner namespace."""
    return subprocess.run(["ip", "netns", "exec", lan.scanner, sys.executable, "-c", DISCOVER,
                           subnet], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          check=False)


def test_proposal_lists_exactly_the_hosts_with_macs_and_types(lan: ClassroomLan) -> None:
    """ARP finds all three with their MACs; the PJLink responder is the projector, the host
    with 3389 open the PC, the silent one 'other'; the proposal is a valid av config."""
    out = discover_in_scanner(lan, f"{lan.prefix}.0/24")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"# schoolmon agent discover --subnet {lan.prefix}.0/24: 3 ")
    devices = yaml.safe_load(out.stdout)["devices"]
    got = {d["host"]: (d["mac"], d["device_type"], d["method"], d.get("port"))
           for d in devices}
    assert got == {
        lan.ips["projector"]: (lan.macs["projector"], "projector", "pjlink", None),
        lan.ips["pc"]: (lan.macs["pc"], "pc", "tcp", 3389),
        lan.ips["panel"]: (lan.macs["panel"], "other", "icmp", None),
    }
    # Pasted under an av probe as is, it validates (names and classrooms still to be set).
    settings = AvSettings.model_validate({"type": "av", "devices": devices})
    assert [d.name for d in settings.devices] == [
        f"{t}-{lan.ips[h].replace('.', '-')}" for h, t in
        (("projector", "projector"), ("pc", "pc"), ("panel", "other"))]


@pytest.mark.parametrize(("subnet", "message"), [
    ("10.0.0.0/8", "at most 4096"), ("fd00::/64", "must be IPv4"), ("school-lan", "not a CIDR"),
])
def test_bad_subnet_is_one_line_exit_2(lan: ClassroomLan, subnet: str, message: str) -> None:
    """A subnet that is no CIDR, too large or IPv6: one line on stderr, exit 2, no output."""
    out = discover_in_scanner(lan, subnet)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and message in out.stderr
