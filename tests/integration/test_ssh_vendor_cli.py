"""netmiko's huawei, hp_comware, ruijie_os and cisco_ios drivers against a recorded device CLI.

No Huawei, H3C, Ruijie or Cisco device can run here, so tests/peers/cli_ssh_device.py serves
their recorded real output over a real SSH session (prompt, echo, pty).  The probe, through
build() and netmiko's session preparation for each vendor, must report exactly what the same
recorded output gives when handed to the probe directly: nothing lost or added on the way.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest

from agent.probes.ssh import SshProbe, SshSettings, SshTarget
from agent.probes.ssh_session import Timeouts
from common.wire import Sample, check_samples
from tests.peers.cli_ssh_device import CliSshDevice

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ssh"


def recorded(parser: str, case: str) -> str:
    """A recorded answer."""
    return (FIXTURES / parser / case / "output.txt").read_bytes().decode("utf-8")


VENDORS = {
    "huawei": ("<edge-sw>", {
        "display interface": recorded("huawei_display_interface", "switch_all_ifaces_eth_trunk"),
        "display interface brief": recorded("huawei_display_interface_brief",
                                            "ar_router_cellular_dialer"),
        "display version": recorded("huawei_display_version", "s7706_v200r010")}),
    "hp_comware": ("<h3c-gw>", {
        "display interface": recorded("hp_comware_display_interface", "router_release_09119p17"),
        "display interface brief": recorded("hp_comware_display_interface_brief",
                                            "release_9119p17"),
        "display version": recorded("hp_comware_display_version", "hpe_ff5945_comware7_1_070")}),
    "ruijie_os": ("rj-core#", {
        "show interfaces": recorded("ruijie_show_interfaces", "gi9_21_fiber_trunk"),
        "show interfaces status": recorded("ruijie_show_interfaces_status",
                                           "chassis_whitespace_collapsed")}),
    "cisco_ios": ("access-sw#", {
        "show interfaces": recorded("cisco_ios_show_interfaces", "catalyst_vlan1_and_ports"),
        "show version": recorded("cisco_ios_show_version", "catalyst_4948e_12_2_54sg1")}),
}


@pytest.fixture(scope="module")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ed25519 host key for the recorded devices."""
    key = tmp_path_factory.mktemp("cli") / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture
def password() -> str:
    """A fresh random password."""
    return secrets.token_urlsafe(16)


def cfg(device_type: str, port: int, password: str) -> SshSettings:
    """One target on the recorded device."""
    return SshSettings.model_validate(
        {"type": "ssh", "targets": [{"name": "dev", "host": "127.0.0.1", "port": port,
                                     "device_type": device_type, "username": "mon",
                                     "password_env": "PW"}]},
        context={"environ": {"PW": password}})


class Direct:
    """The recorded answers handed straight to the probe (no SSH, no netmiko)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def __call__(self, target: SshTarget, timeouts: Timeouts) -> Direct:
        """Connect."""
        return self

    def run(self, command: str) -> str:
        """The recorded output."""
        return self.answers[command]

    def close(self) -> None:
        """Nothing to close."""


def comparable(samples: list[Sample]) -> list[tuple[str, dict[str, str], dict[str, object]]]:
    """Samples without timestamps, sorted."""
    check_samples(samples)
    return sorted(((s.kind, s.tags, dict(s.fields)) for s in samples), key=repr)


@pytest.mark.parametrize("device_type", list(VENDORS))
def test_vendor_driver_reports_what_the_recording_says(device_type: str, host_key: Path,
                                                       password: str) -> None:
    """Through netmiko and a real SSH session, the samples equal those of the direct replay."""
    prompt, answers = VENDORS[device_type]
    with CliSshDevice(host_key, prompt, answers, "mon", password) as device:
        settings = cfg(device_type, device.port, password)
        probe = settings.build()
        start = time.monotonic()
        got = probe.collect()
        elapsed = time.monotonic() - start
        assert probe.last_errors["dev"] == []
        wanted = SshProbe(settings, Direct(answers)).collect()
        assert comparable(got) == comparable(wanted)
        assert len(got) > 10
        # netmiko ran the vendor's commands, after its own session preparation.
        assert [c for c in device.commands if c in answers] == list(answers)
    print(f"\n{device_type}: {len(got)} samples in {elapsed:.2f}s")


def test_wrong_password_on_a_vendor_cli(host_key: Path, password: str) -> None:
    """A refused login on a network CLI is the same clear error."""
    with CliSshDevice(host_key, "<edge-sw>", VENDORS["huawei"][1], "mon", password) as device:
        probe = cfg("huawei", device.port, password + "x").build()
        samples = probe.collect()
    assert [s.fields for s in samples] == [{"up": False}]
    assert probe.last_errors["dev"] == [
        f"dev (127.0.0.1:{device.port}): authentication failed for user 'mon' (password)"]

