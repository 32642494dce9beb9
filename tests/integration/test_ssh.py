"""The ssh probe through netmiko against a real OpenSSH sshd (device_type linux).

The test starts Debian's /usr/sbin/sshd on a free loopback port with its own host key and
config (PAM, password and key login, only the test user allowed), creates a test user with a
random password, and removes both at the end.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.probes.ssh import SshProbe, SshSettings, SshTarget
from agent.probes.ssh_session import NetmikoSession, Timeouts, connect_netmiko
from common.wire import Sample, check_samples
from tests.conftest import wait_until
from tests.net import free_port

pytestmark = pytest.mark.integration




def banner(port: int) -> bool:
    """True when an SSH server answers with its banner."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


@dataclass
class Sshd:
    """A running sshd and its test user."""

    port: int
    user: str
    password: str
    host_pub: str  # the server's public host key line
    home: Path
    dir: Path


def run(*args: str, stdin: str | None = None) -> None:
    """Run a system command; fail with its stderr."""
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{args}: {result.stderr}"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """sshd -D on a loopback port with a temporary host key and a temporary user."""
    d = tmp_path_factory.mktemp("sshd")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_ed25519"))
    user, password = f"smssh{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    run("useradd", "--create-home", "--shell", "/bin/bash", user)
    proc = None
    try:
        run("chpasswd", stdin=f"{user}:{password}\n")
        port = free_port()
        (d / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\n"
            f"PidFile {d}/sshd.pid\nUsePAM yes\nPasswordAuthentication yes\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            f"AuthorizedKeysFile .ssh/authorized_keys\nAllowUsers {user}\nPermitRootLogin no\n"
            "UseDNS no\nMaxStartups 100\nLogLevel VERBOSE\n")
        log = (d / "sshd.log").open("w")
        proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(d / "sshd_config"), "-e"],
                                stderr=log)
        wait_until(lambda: banner(port), 15, "sshd to answer")
        yield Sshd(port, user, password, (d / "host_ed25519.pub").read_text().strip(),
                   Path(f"/home/{user}"), d)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        # Sessions end with their client; userdel refuses while a process of the user lives.
        wait_until(lambda: subprocess.run(["userdel", "-r", user], capture_output=True,
                                          check=False).returncode in (0, 6), 15,
                   f"userdel -r {user}")


def linux_target(sshd: Sshd, **extra: object) -> dict[str, object]:
    """The live sshd as a target, logging in with the password from SSH_PW."""
    return {"name": "live-linux", "host": "127.0.0.1", "port": sshd.port,
            "device_type": "linux", "username": sshd.user, "password_env": "SSH_PW", **extra}


def settings(sshd: Sshd, *targets: dict[str, object], password: str | None = None,
             **extra: object) -> SshSettings:
    """Settings with the secret(s) from a test environment."""
    env = {"SSH_PW": sshd.password if password is None else password, "KEY_PW": "kp-" + "x" * 8}
    return SshSettings.model_validate({"type": "ssh", "targets": list(targets), **extra},
                                      context={"environ": env})


def split(samples: list[Sample]) -> tuple[dict[str, Sample], dict[tuple[str, str], Sample]]:
    """netdev by device, netdev_if by (device, ifname); all valid on the wire."""
    check_samples(samples)
    return ({s.tags["device"]: s for s in samples if s.kind == "netdev"},
            {(s.tags["device"], s.tags["ifname"]): s for s in samples if s.kind == "netdev_if"})


def test_lo_is_up_and_the_second_poll_has_rates(sshd: Sshd) -> None:
    """Through build() (netmiko): lo up, no rate at first, rates on the second poll; uptime."""
    probe = settings(sshd, linux_target(sshd)).build()
    start = time.monotonic()
    netdev, ifs = split(probe.collect())
    first_poll = time.monotonic() - start
    assert probe.last_errors["live-linux"] == []
    assert netdev["live-linux"].fields["up"] is True
    local_uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert abs(int(netdev["live-linux"].fields["uptime_s"]) - local_uptime) < 30
    lo = ifs["live-linux", "lo"].fields
    assert lo["up"] is True and "in_bps" not in lo and lo["in_errors"] == 0
    netdev, ifs = split(probe.collect())
    lo = ifs["live-linux", "lo"].fields
    # The SSH session itself runs over lo, so lo carried traffic between the two reads.
    assert float(lo["in_bps"]) > 0 and float(lo["out_bps"]) > 0
    assert set(ifs) >= {("live-linux", "lo")}
    print(f"\nfirst poll of the live sshd (connect + 4 commands): {first_poll:.2f}s")


def test_wrong_password_is_a_clear_error_and_no_secret_is_logged(
        sshd: Sshd, caplog: pytest.LogCaptureFixture) -> None:
    """up=false, the error names the device; neither password appears in any log record."""
    wrong = "Wr0ng-" + secrets.token_urlsafe(12)
    caplog.set_level(logging.DEBUG)  # everything netmiko and paramiko log, too
    good = settings(sshd, linux_target(sshd)).build()
    assert split(good.collect())[0]["live-linux"].fields["up"] is True
    bad = settings(sshd, linux_target(sshd), password=wrong).build()
    netdev, ifs = split(bad.collect())
    assert netdev["live-linux"].fields == {"up": False} and not ifs
    (error,) = bad.last_errors["live-linux"]
    assert error == (f"live-linux (127.0.0.1:{sshd.port}): authentication failed for user "
                     f"{sshd.user!r} (password)")
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert f"live-linux (127.0.0.1:{sshd.port}): authentication failed" in logged
    for secret in (wrong, sshd.password):
        assert secret not in logged and secret not in error


@pytest.fixture(scope="module")
def client_key(sshd: Sshd) -> Path:
    """An ed25519 key with a passphrase, authorised for the test user."""
    key = sshd.dir / "client_ed25519"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "kp-" + "x" * 8, "-f", str(key))
    ssh_dir = sshd.home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    run("chown", "-R", f"{sshd.user}:{sshd.user}", str(ssh_dir))
    return key


def test_key_login_and_host_key_checking(sshd: Sshd, client_key: Path) -> None:
    """Key with passphrase (no password); known_hosts accepted when right, refused when not."""
    known = sshd.dir / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_pub}\n")
    other = sshd.dir / "other_host"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other))
    wrong_known = sshd.dir / "wrong_known_hosts"
    wrong_known.write_text(f"[127.0.0.1]:{sshd.port} {Path(f'{other}.pub').read_text()}")
    key_login = {"password_env": None, "key_file": str(client_key), "passphrase_env": "KEY_PW"}
    probe = settings(sshd, linux_target(sshd, known_hosts_file=str(known), **key_login),
                     linux_target(sshd, name="no-pass", key_file=str(client_key),
                                  password_env=None),
                     linux_target(sshd, name="wrong-host", known_hosts_file=str(wrong_known),
                                  **key_login)).build()
    netdev, ifs = split(probe.collect())
    assert netdev["live-linux"].fields["up"] is True and ("live-linux", "lo") in ifs
    assert probe.last_errors["live-linux"] == []
    assert netdev["no-pass"].fields == {"up": False}
    assert "is encrypted: set passphrase_env" in probe.last_errors["no-pass"][0]
    assert netdev["wrong-host"].fields == {"up": False}
    assert "host key of 127.0.0.1" in probe.last_errors["wrong-host"][0]
    assert "does not match known_hosts_file" in probe.last_errors["wrong-host"][0]


class Tarpit:
    """A TCP port that accepts connections (the kernel's backlog) and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        """Close: waiting clients get a reset."""
        self.sock.close()


class Timed:
    """The production connector, noting when each device's session closed."""

    def __init__(self) -> None:
        self.closed_at: dict[str, float] = {}

    def __call__(self, target: SshTarget, timeouts: Timeouts) -> NetmikoSession:
        """Connect with netmiko; wrap close."""
        session = connect_netmiko(target, timeouts)
        real_close = session.close

        def close() -> None:
            real_close()
            self.closed_at[target.name] = time.monotonic()

        session.close = close  # type: ignore[method-assign]
        return session


@pytest.mark.parametrize(("connect_timeout", "timeout", "tarpit_error"), [
    pytest.param("30s", "3s", "no complete answer within the probe timeout (3s)",
                 id="dead-host-cut-at-probe-timeout"),
    pytest.param("1s", "5s", "no SSH answer from 127.0.0.1:{port} within 1s (not an SSH server?)",
                 id="dead-host-cut-at-connect-timeout"),
])
def test_dead_devices_never_delay_the_live_one(sshd: Sshd, connect_timeout: str, timeout: str,
                                               tarpit_error: str) -> None:
    """A closed port and a silent host beside the live sshd, polled concurrently: the live one
    is done at once, the poll ends by the probe timeout, each dead one has its own error."""
    tarpit = Tarpit()
    try:
        cfg = settings(sshd,
                       linux_target(sshd, name="silent", port=tarpit.port),
                       linux_target(sshd, name="closed", port=free_port()),
                       linux_target(sshd), connect_timeout=connect_timeout, timeout=timeout)
        timed = Timed()
        probe = SshProbe(cfg, timed)
        start = time.monotonic()
        netdev, ifs = split(probe.collect())
        elapsed = time.monotonic() - start
    finally:
        tarpit.close()
    limit = float(timeout.rstrip("s"))
    assert elapsed < limit, elapsed
    assert timed.closed_at["live-linux"] - start < 2.5  # not held up by the silent host
    assert netdev["live-linux"].fields["up"] is True and ("live-linux", "lo") in ifs
    assert netdev["closed"].fields == {"up": False}
    assert "refused" in probe.last_errors["closed"][0]
    assert netdev["silent"].fields == {"up": False}
    assert probe.last_errors["silent"] == [
        f"silent (127.0.0.1:{tarpit.port}): " + tarpit_error.format(port=tarpit.port)]
    print(f"\n{connect_timeout}/{timeout}: poll {elapsed:.2f}s, live device done after "
          f"{timed.closed_at['live-linux'] - start:.2f}s")
