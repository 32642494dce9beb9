"""The ssh probe on an injected connector replaying recorded device answers (no network).

The connector stands in for netmiko where no real device can run here (a Huawei, an H3C, a
Ruijie, a Cisco): it answers each command with the recorded real output from tests/fixtures/ssh.
The probe against a real OpenSSH server is in tests/integration/test_ssh.py.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.probes.ssh import SshProbe, SshSettings, SshTarget
from agent.probes.ssh_session import SshError, Timeouts
from common.wire import Sample, check_samples

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ssh"
T0_MS = 1_763_890_000_000
PASSWORD = "s3cr3t-Pa55word!"
ENV = {"SSH_PW": PASSWORD}


def recorded(parser: str, case: str) -> str:
    """A recorded answer."""
    return (FIXTURES / parser / case / "output.txt").read_bytes().decode("utf-8")


Answers = dict[str, str | Exception]

HUAWEI: Answers = {
    "display interface": recorded("huawei_display_interface", "ar_ge0_0_0_switchport_down"),
    "display interface brief": recorded("huawei_display_interface_brief",
                                        "ar_router_cellular_dialer"),
    "display version": recorded("huawei_display_version", "ar6280_v300r019"),
}
COMWARE: Answers = {  # the brief and detailed captures of one router (release 9119P17)
    "display interface": recorded("hp_comware_display_interface", "router_release_09119p17"),
    "display interface brief": recorded("hp_comware_display_interface_brief", "release_9119p17"),
    "display version": recorded("hp_comware_display_version", "hpe_ff5945_comware7_1_070"),
}
RUIJIE: Answers = {
    "show interfaces": recorded("ruijie_show_interfaces", "gi9_21_fiber_trunk"),
    "show interfaces status": recorded("ruijie_show_interfaces_status",
                                       "chassis_whitespace_collapsed"),
}
CISCO: Answers = {
    "show interfaces": recorded("cisco_ios_show_interfaces", "router_mv96340"),
    "show version": recorded("cisco_ios_show_version", "catalyst_4948e_12_2_54sg1"),
}
LINUX: Answers = {
    "ip -o link": recorded("linux_ip_o_link", "host_veth_ifb"),
    "cat /proc/net/dev": recorded("linux_proc_net_dev", "host_veth_ifb"),
    "grep -H . /sys/class/net/*/speed 2>/dev/null": recorded("linux_sys_class_net_speed",
                                                            "host_virtual_eth0_unknown"),
    "cat /proc/uptime": recorded("linux_proc_uptime", "vm"),
}


class Replay:
    """A session answering commands from a dict; records what was asked."""

    def __init__(self, answers: Answers, log: list[str]) -> None:
        self.answers = answers
        self.log = log
        self.closed = False

    def run(self, command: str) -> str:
        """The recorded answer (or the recorded failure)."""
        self.log.append(command)
        answer = self.answers.get(command, SshError(f"no recording for {command!r}"))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        """Mark closed."""
        self.closed = True


class Devices:
    """A connector over recorded devices, by target name; a device may fail to connect."""

    def __init__(self, answers: dict[str, Answers | Exception]) -> None:
        self.answers = answers
        self.commands: dict[str, list[str]] = {}
        self.sessions: list[Replay] = []

    def __call__(self, target: SshTarget, timeouts: Timeouts) -> Replay:
        """Connect to a recorded device."""
        answers = self.answers[target.name]
        if isinstance(answers, Exception):
            raise answers
        session = Replay(answers, self.commands.setdefault(target.name, []))
        self.sessions.append(session)
        return session


def target(name: str, device_type: str, **extra: object) -> dict[str, object]:
    """A target entry as YAML would give it."""
    return {"name": name, "host": "192.0.2.10", "device_type": device_type, "username": "mon",
            "password_env": "SSH_PW", **extra}


def settings(*targets: dict[str, object], **extra: object) -> SshSettings:
    """Validated settings with the secret from a test environment."""
    return SshSettings.model_validate({"type": "ssh", "targets": list(targets), **extra},
                                      context={"environ": ENV})


def by_kind(samples: list[Sample]) -> tuple[dict[str, Sample], dict[tuple[str, str], Sample]]:
    """netdev samples by device; netdev_if samples by (device, ifname)."""
    check_samples(samples)  # all the probe makes is valid on the wire
    netdev = {s.tags["device"]: s for s in samples if s.kind == "netdev"}
    ifs = {(s.tags["device"], s.tags["ifname"]): s for s in samples if s.kind == "netdev_if"}
    assert all(s.tags["source"] == "ssh" for s in samples)
    return netdev, ifs


def probe(cfg: SshSettings, connector: Callable[..., object],
          clock: Iterator[float] | None = None) -> SshProbe:
    """A probe with a fixed wall clock (and an optional monotonic sequence)."""
    ticks = clock or iter(range(10**6))
    return SshProbe(cfg, connector, monotonic=lambda: float(next(ticks)),  # type: ignore[arg-type]
                    now_ms=lambda: T0_MS)


def test_huawei_detail_and_brief_merge_with_uptime() -> None:
    """Rates and speed from 'display interface', the rest from brief, uptime from version."""
    devices = Devices({"edge-sw": HUAWEI})
    netdev, ifs = by_kind(probe(settings(target("edge-sw", "huawei")), devices).collect())
    assert devices.commands["edge-sw"] == ["display interface", "display interface brief",
                                           "display version"]
    assert netdev["edge-sw"].fields == {"up": True, "uptime_s": 36_674_400}
    assert ifs["edge-sw", "GigabitEthernet0/0/4"].fields == {
        "up": False, "speed_mbps": 1000, "in_bps": 2112.0, "out_bps": 1904.0,
        "in_errors": 0, "out_errors": 0}
    assert ifs["edge-sw", "GigabitEthernet0/0/2"].fields["up"] is True
    # Only in brief (this capture's detail lists the GE ports only): state and errors, no rate.
    assert ifs["edge-sw", "Dialer1"].fields == {"up": True, "in_errors": 0, "out_errors": 0}
    assert ("edge-sw", "GigabitEthernet0/0/5(v)") not in ifs  # the (v) flag is not in the name
    assert len(ifs) == 17
    assert all(s.closed for s in devices.sessions)


def test_comware_abbreviated_and_full_names_are_one_interface() -> None:
    """GE0/0/1 (brief) and GigabitEthernet0/0/1 (detail) give one sample, full name."""
    netdev, ifs = by_kind(probe(settings(target("h3c", "hp_comware")),
                                Devices({"h3c": COMWARE})).collect())
    assert len(ifs) == 16
    assert ifs["h3c", "GigabitEthernet0/0/1"].fields == {
        "up": True, "speed_mbps": 1000, "in_bps": 677306 * 8.0, "out_bps": 175793 * 8.0,
        "in_errors": 0, "out_errors": 0}
    assert ifs["h3c", "GigabitEthernet0/0/0"].fields["up"] is False  # Administratively DOWN
    assert ifs["h3c", "Register-Tunnel0"].fields == {"up": False}  # detail: protocol DOWN
    assert netdev["h3c"].fields == {"up": True, "uptime_s": 50_989_860}


def test_ruijie_names_with_spaces_merge_and_no_uptime() -> None:
    """'GigabitEthernet 9/21' from both commands; Ruijie gives no uptime."""
    netdev, ifs = by_kind(probe(settings(target("rj", "ruijie_os")),
                                Devices({"rj": RUIJIE})).collect())
    assert netdev["rj"].fields == {"up": True}
    assert len(ifs) == 109  # 108 status rows + GigabitEthernet 9/21 from 'show interfaces'
    assert ifs["rj", "GigabitEthernet 9/21"].fields == {
        "up": True, "speed_mbps": 1000, "in_bps": 111813.0, "out_bps": 167735.0,
        "in_errors": 0, "out_errors": 0}
    assert ifs["rj", "GigabitEthernet 1/3"].fields == {"up": True, "speed_mbps": 10}


def test_cisco_router_admin_down_and_subinterfaces() -> None:
    """Admin-down ports are down; subinterfaces report only their state."""
    netdev, ifs = by_kind(probe(settings(target("r1", "cisco_ios")),
                                Devices({"r1": CISCO})).collect())
    assert netdev["r1"].fields == {"up": True, "uptime_s": 82_374_900}
    assert ifs["r1", "GigabitEthernet0/1"].fields["up"] is False
    assert ifs["r1", "GigabitEthernet0/0.6"].fields == {"up": True}
    assert ifs["r1", "GigabitEthernet0/0"].fields["speed_mbps"] == 100


def proc_net_dev(lo: tuple[int, int], eth0: tuple[int, int]) -> str:
    """The recorded /proc/net/dev with lo and eth0 byte counters replaced."""
    out = []
    for line in recorded("linux_proc_net_dev", "host_veth_ifb").splitlines():
        name, _, rest = line.partition(":")
        counters = {"lo": lo, "eth0": eth0}.get(name.strip())
        if counters is None:
            out.append(line)
            continue
        v = rest.split()
        v[0], v[8] = str(counters[0]), str(counters[1])
        out.append(f"{name}: " + " ".join(v))
    return "\n".join(out) + "\n"


def test_linux_rates_from_counter_deltas_first_poll_none_and_reset() -> None:
    """No rate on the first poll; bits/s from byte deltas; none after a counter reset."""
    polls = [((1_000, 2_000), (10, 10)), ((126_000, 2_500), (10, 10)),
             ((50, 60), (20, 20)), ((1_050, 1_060), (30, 30))]
    answers = dict(LINUX)
    devices = Devices({"gw": answers})
    # monotonic is read once per command (4 per poll): counters are read at the 2nd of each.
    p = probe(settings(target("gw", "linux")), devices, clock=iter(range(0, 1000, 5)))
    got = []
    for lo, eth0 in polls:
        answers["cat /proc/net/dev"] = proc_net_dev(lo, eth0)
        netdev, ifs = by_kind(p.collect())
        got.append((ifs["gw", "lo"].fields.get("in_bps"), ifs["gw", "lo"].fields.get("out_bps")))
    # Counters are read 15 s apart (three monotonic reads of 5 s per poll).
    assert got == [(None, None), (125_000 * 8 / 15, 500 * 8 / 15), (None, None),
                   (1_000 * 8 / 15, 1_000 * 8 / 15)]
    assert ifs["gw", "lo"].fields["up"] is True  # UNKNOWN state with LOWER_UP: up
    assert ifs["gw", "ifb0"].fields["up"] is False
    assert "speed_mbps" not in ifs["gw", "eth0"].fields  # the kernel says -1
    assert netdev["gw"].fields == {"up": True, "uptime_s": 2706}


def test_unreachable_device_is_down_and_named_others_unaffected(
        caplog: pytest.LogCaptureFixture) -> None:
    """A failed login gives up=false and one log line naming the device."""
    devices = Devices({"dead": SshError("connection to 192.0.2.10:22 refused"), "r1": CISCO})
    p = probe(settings(target("dead", "huawei"), target("r1", "cisco_ios")), devices)
    with caplog.at_level(logging.WARNING):
        netdev, ifs = by_kind(p.collect())
    assert netdev["dead"].fields == {"up": False}
    assert not [k for k in ifs if k[0] == "dead"]
    assert netdev["r1"].fields["up"] is True and len([k for k in ifs if k[0] == "r1"]) == 14
    assert p.last_errors["dead"] == ["dead (192.0.2.10:22): connection to 192.0.2.10:22 refused"]
    assert p.last_errors["r1"] == []
    assert "dead (192.0.2.10:22)" in caplog.text and "refused" in caplog.text


def test_garbage_answer_is_an_error_naming_device_and_command() -> None:
    """One command's garbage costs that command's data; the rest is still reported."""
    answers = dict(HUAWEI)
    answers["display interface"] = "\x1b[42D   \x00 garbage \x7f\n" * 3
    p = probe(settings(target("edge-sw", "huawei")), Devices({"edge-sw": answers}))
    netdev, ifs = by_kind(p.collect())
    (error,) = p.last_errors["edge-sw"]
    assert error.startswith("edge-sw (192.0.2.10:22): 'display interface': ")
    assert netdev["edge-sw"].fields["up"] is True  # it answered
    assert ifs["edge-sw", "Dialer1"].fields["up"] is True  # brief still parsed
    assert "in_bps" not in ifs["edge-sw", "GigabitEthernet0/0/4"].fields


def test_session_failing_midway_stops_that_device() -> None:
    """A command that times out ends the poll of that device; what came before is kept."""
    answers = dict(CISCO)
    answers["show version"] = SshError("no complete answer to 'show version' within 30s")
    devices = Devices({"r1": answers})
    p = probe(settings(target("r1", "cisco_ios")), devices)
    netdev, ifs = by_kind(p.collect())
    assert netdev["r1"].fields == {"up": True}
    assert len(ifs) == 14
    assert p.last_errors["r1"] == [
        "r1 (192.0.2.10:22): no complete answer to 'show version' within 30s"]
    assert devices.sessions[0].closed


def test_connector_bug_is_contained_and_secrets_masked() -> None:
    """An unexpected exception costs one device; a secret in its text is masked."""
    devices = Devices({"x": RuntimeError(f"boom with {PASSWORD} inside"), "r1": CISCO})
    p = probe(settings(target("x", "huawei"), target("r1", "cisco_ios")), devices)
    netdev, _ = by_kind(p.collect())
    assert netdev["x"].fields == {"up": False} and netdev["r1"].fields["up"] is True
    (error,) = p.last_errors["x"]
    assert PASSWORD not in error and "***" in error and "RuntimeError" in error


class Blocking:
    """A connector whose 'slow' device hangs until released; the others answer at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.inner = Devices({"fast": CISCO})

    def __call__(self, target: SshTarget, timeouts: Timeouts) -> Replay:
        """Connect."""
        if target.name == "slow":
            self.started.set()
            self.release.wait(30)
            raise SshError("released")
        return self.inner(target, timeouts)


def test_slow_device_costs_at_most_the_timeout_and_delays_no_other() -> None:
    """The hung device is reported down at the deadline; the other is complete; a hung poll is
    not started again while it runs."""
    blocking = Blocking()
    cfg = settings(target("slow", "huawei"), target("fast", "cisco_ios"), timeout="1s",
                   max_parallel=2)
    p = SshProbe(cfg, blocking, now_ms=lambda: T0_MS)
    try:
        start = time.monotonic()
        netdev, ifs = by_kind(p.collect())
        elapsed = time.monotonic() - start
        assert 0.9 <= elapsed < 1.5, elapsed
        assert netdev["slow"].fields == {"up": False}
        assert "no complete answer within the probe timeout" in p.last_errors["slow"][0]
        assert netdev["fast"].fields["up"] is True and len(ifs) == 14
        netdev, _ = by_kind(p.collect())  # the slow poll still hangs: not started twice
        assert p.last_errors["slow"] == ["slow (192.0.2.10:22): previous poll still running"]
        assert netdev["slow"].fields == {"up": False}
    finally:
        blocking.release.set()


def test_interfaces_filter() -> None:
    """Only the listed interfaces are reported."""
    _, ifs = by_kind(probe(settings(target("r1", "cisco_ios",
                                           interfaces=["Loopback0", "Tunnel9"])),
                           Devices({"r1": CISCO})).collect())
    assert list(ifs) == [("r1", "Loopback0")]


@pytest.mark.parametrize(("entry", "message"), [
    ({"password_env": None}, "give password_env, password_file or key_file"),
    ({"password_env": "NOPE"}, "environment variable NOPE is not set"),
    ({"device_type": "juniper"}, "device_type"),
    ({"port": 0}, "port"),
    ({"name": "bad name"}, "name"),
    ({"passwd": "x"}, "passwd"),
])
def test_settings_errors(entry: dict[str, object], message: str) -> None:
    """Bad targets are config errors naming the key."""
    with pytest.raises(ValueError, match=message):
        settings({**target("a", "huawei"), **entry})


def test_settings_defaults_unique_names_and_secret_never_shown() -> None:
    """5 min interval, 60 s timeout; names unique; the password is in no dump or repr."""
    cfg = settings(target("a", "huawei"), target("b", "linux", password_env=None,
                                                  key_file="/etc/schoolmon/id_ed25519"))
    assert (cfg.interval, cfg.timeout, cfg.connect_timeout) == (300.0, 60.0, 10.0)
    assert cfg.targets[0].secret("password") == PASSWORD
    assert cfg.targets[1].secret("password") is None
    assert PASSWORD not in repr(cfg) and PASSWORD not in str(cfg.model_dump())
    with pytest.raises(ValueError, match="duplicate target name"):
        settings(target("a", "huawei"), target("a", "linux"))


def test_loading_the_settings_and_building_imports_no_netmiko() -> None:
    """Config loading and build() leave netmiko and paramiko unloaded until the first poll."""
    code = ("import sys\n"
            "from agent.probes.ssh import SshSettings\n"
            "s = SshSettings.model_validate({'type': 'ssh', 'targets': [{'name': 'a', "
            "'host': 'h', 'device_type': 'linux', 'username': 'u', 'key_file': '/k'}]})\n"
            "s.build()\n"
            "assert 'netmiko' not in sys.modules and 'paramiko' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
