"""reach against real hosts: loopback, both ICMP socket kinds, and namespaces across a veth link."""

from __future__ import annotations

import json
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.probes.icmp import DEFAULT_SOCKETS, IcmpSockets
from agent.probes.reach import ReachSettings, icmp_echo, tcp_connect
from bench.netlab import ShapedLink
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOBODY = pwd.getpwnam("nobody")


def test_icmp_loopback_raw_socket_as_root() -> None:
    """As root the raw socket is used; every echo to 127.0.0.1 is answered."""
    sockets = IcmpSockets()
    stats = icmp_echo("127.0.0.1", 4, 1.0, 0.01, sockets=sockets)
    assert (stats.sent, stats.received, stats.loss_pct) == (4, 4, 0.0)
    assert sockets.kind(socket.AF_INET) == "raw"
    assert all(0 < r < 100 for r in stats.rtts_ms)


def test_icmpv6_loopback() -> None:
    """ICMPv6 echo to ::1."""
    stats = icmp_echo("::1", 3, 1.0, 0.01)
    assert stats.received == 3 and stats.up
    assert DEFAULT_SOCKETS.kind(socket.AF_INET6) == "raw"


def test_concurrent_raw_pingers_do_not_take_each_others_replies() -> None:
    """Raw sockets see every reply on the host: identifier and token keep them apart."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: icmp_echo("127.0.0.1", 10, 1.0, 0.0), range(8)))
    assert [(r.sent, r.received) for r in results] == [(10, 10)] * 8


@pytest.fixture
def listener() -> Iterator[int]:
    """A listening TCP socket on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def test_tcp_connect_to_listening_port(listener: int) -> None:
    """Every connect to a listening port succeeds."""
    stats = tcp_connect("127.0.0.1", listener, 3, 1.0, 0.01)
    assert (stats.received, stats.loss_pct, stats.up) == (3, 0.0, True)


def test_tcp_connect_to_closed_port_is_down_at_once() -> None:
    """A refused connect is a loss; no waiting for the timeout."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        started = time.monotonic()
        stats = tcp_connect("127.0.0.1", port, 3, 5.0, 0.01)
        elapsed = time.monotonic() - started
    assert (stats.sent, stats.received, stats.up, stats.loss_pct) == (3, 0, False, 100.0)
    assert elapsed < 1.0


def test_probe_on_loopback_through_build(listener: int) -> None:
    """ReachSettings.build() wires the real functions: icmp and tcp samples, both up."""
    probe = ReachSettings.model_validate({
        "type": "reach", "count": 3, "timeout": "1s", "echo_interval": "10ms",
        "targets": [{"name": "lo", "host": "127.0.0.1", "role": "gateway"},
                    {"name": "svc", "host": "localhost", "role": "device", "method": "tcp",
                     "port": listener}]}).build()
    samples = {s.tags["target"]: s.fields for s in probe.collect()}
    assert samples["lo"]["up"] is True and samples["lo"]["loss_pct"] == 0.0
    assert samples["svc"]["up"] is True and samples["svc"]["loss_pct"] == 0.0


CHILD = """
import json, socket, sys
from agent.probes.icmp import DEFAULT_SOCKETS, IcmpPermissionError
from agent.probes.reach import icmp_echo
try:
    s = icmp_echo(sys.argv[1], 3, 1.0, 0.01)
except IcmpPermissionError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    print(json.dumps({"received": s.received, "kind": DEFAULT_SOCKETS.kind(fam)}))
"""


@pytest.fixture
def private_ns() -> Iterator[str]:
    """A network namespace of our own: its ping_group_range is its own, so changing it
    cannot disturb anything else on this machine (the sysctl is per namespace)."""
    name = f"smReach{time.monotonic_ns() % 10**9}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def as_nobody(ns: str, host: str) -> dict[str, object]:
    """Run CHILD in ``ns`` as nobody, without any capability."""
    cmd = ["ip", "netns", "exec", ns, "setpriv", f"--reuid={NOBODY.pw_uid}",
           f"--regid={NOBODY.pw_gid}", "--clear-groups", "--inh-caps=-all",
           "--bounding-set=-all", sys.executable, "-c", CHILD, host]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT, check=False,
                         env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def ping_group_range(ns: str, value: str | None = None) -> str:
    """Read (and set) net.ipv4.ping_group_range inside ``ns``."""
    if value is not None:
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                        f"net.ipv4.ping_group_range={value}"], check=True)
    out = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n",
                          "net.ipv4.ping_group_range"], capture_output=True, text=True,
                         check=True)
    return " ".join(out.stdout.split())


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_unprivileged_datagram_socket(private_ns: str, host: str) -> None:
    """Without CAP_NET_RAW but inside ping_group_range, the datagram socket is used."""
    saved = ping_group_range(private_ns)
    try:
        gid = NOBODY.pw_gid
        assert ping_group_range(private_ns, f"{gid} {gid}") == f"{gid} {gid}"
        assert as_nobody(private_ns, host) == {"received": 3, "kind": "dgram"}
    finally:
        ping_group_range(private_ns, saved)
    assert ping_group_range(private_ns) == saved


def test_neither_permission_is_a_clear_error(private_ns: str) -> None:
    """No CAP_NET_RAW and ping_group_range '1 0': the error names both missing permissions."""
    assert ping_group_range(private_ns, "1 0") == "1 0"
    result = as_nobody(private_ns, "127.0.0.1")
    error = str(result["error"])
    assert "no CAP_NET_RAW" in error and "setcap cap_net_raw+ep" in error
    assert f"its group {NOBODY.pw_gid} is outside net.ipv4.ping_group_range ('1 0';" in error
    assert f'sysctl -w net.ipv4.ping_group_range="{NOBODY.pw_gid} {NOBODY.pw_gid}"' in error


PROBE_IN_NS = """
import json, sys, time
from agent.probes.reach import ReachSettings
probe = ReachSettings.model_validate(json.loads(sys.argv[1])).build()
t = time.monotonic()
samples = probe.collect()
print(json.dumps({"elapsed": time.monotonic() - t,
                  "samples": {s.tags["target"]: s.fields for s in samples}}))
"""

LISTEN = """
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 8443)); s.listen(64)
print("ready", flush=True); sys.stdin.read()
"""


def probe_from_client(link: ShapedLink, settings: dict[str, object]) -> dict[str, object]:
    """Run the reach probe inside the client namespace; its samples by target."""
    out = subprocess.run(link.command(link.client_ns, [sys.executable, "-c", PROBE_IN_NS,
                                                       json.dumps(settings)]),
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_namespace_host_reachable_then_cut() -> None:
    """Across a veth link: 0 % loss; a dead address costs only its own timeout; after the
    link is cut every echo is lost and the targets are down."""
    with ShapedLink(100) as link:
        server = subprocess.Popen(link.command(link.server_ns, [sys.executable, "-c", LISTEN,
                                                                link.server_ip]),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline() == "ready\n"
            dead_ip = link.server_ip.rsplit(".", 1)[0] + ".99"
            settings = {"type": "reach", "count": 5, "timeout": "1s", "echo_interval": "100ms",
                        "targets": [
                            {"name": "hub", "host": link.server_ip, "role": "district"},
                            {"name": "hub-https", "host": link.server_ip, "role": "district",
                             "method": "tcp", "port": 8443},
                            {"name": "dead", "host": dead_ip, "role": "device"}]}
            wait_until(lambda: probe_from_client(link, settings)["samples"]  # type: ignore[index]
                       ["hub"]["up"], 10, "the link to come up")
            before = probe_from_client(link, settings)
            link.cut()
            after = probe_from_client(link, settings)
        finally:
            server.communicate("", timeout=10)
    up = before["samples"]
    assert isinstance(up, dict)
    assert up["hub"]["loss_pct"] == 0.0 and up["hub"]["up"] is True
    assert up["hub-https"]["loss_pct"] == 0.0 and up["hub-https"]["up"] is True
    assert up["dead"] == {"up": False, "loss_pct": 100.0}
    # Concurrent: the dead target bounds the run at (count-1)*interval + timeout, no more.
    assert 1.4 <= float(before["elapsed"]) < 2.5  # type: ignore[arg-type]
    down = after["samples"]
    assert isinstance(down, dict)
    for name in ("hub", "hub-https", "dead"):
        assert down[name] == {"up": False, "loss_pct": 100.0}, name


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_raw_socket_filter_passes_only_our_replies(host: str) -> None:
    """Two raw sessions: each socket receives its own echo replies, never the other's."""
    import select

    from agent.probes.echo_sessions import IcmpSession
    from agent.probes.icmp import IcmpSockets

    sockets = IcmpSockets()
    a, b = IcmpSession(host, sockets), IcmpSession(host, sockets)
    try:
        assert a.kind == "raw" and b.kind == "raw"
        assert b.send(1)
        assert b.wait(2.0)[0] == [1]
        ready, _, _ = select.select([a.sock], [], [], 0.3)
        assert ready == []  # b's request and reply never reached a's socket
        assert a.send(7)
        assert a.wait(2.0)[0] == [7]
    finally:
        a.close()
        b.close()
