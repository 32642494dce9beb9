"""A hostile SSH device costs its own poll only: megabytes of dashes, endless output, absurd
counters.  The device double replays recorded output (no switch runs here) and, for the hostile
device, the answers an attacker or a broken CLI gives."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.probes.ssh import MAX_POLL_CHARS, SshProbe, SshSettings, SshTarget
from agent.probes.ssh_session import SshError, Timeouts
from agent.scheduler import ProbeScheduler, ScheduledProbe
from agent.spool import Spool
from common.wire import check_samples
from tests.conftest import wait_until

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ssh"
ENV = {"SSH_PW": "pw-123456"}


def recorded(parser: str, case: str) -> str:
    """A recorded answer."""
    return (FIXTURES / parser / case / "output.txt").read_bytes().decode("utf-8")


HUAWEI = {
    "display interface": recorded("huawei_display_interface", "ar_ge0_0_0_switchport_down"),
    "display interface brief": recorded("huawei_display_interface_brief",
                                        "ar_router_cellular_dialer"),
    "display version": recorded("huawei_display_version", "ar6280_v300r019"),
}


class Session:
    """Answers commands from a dict."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def run(self, command: str) -> str:
        """The answer, or SshError when there is none."""
        if command not in self.answers:
            raise SshError(f"no answer to {command!r}")
        return self.answers[command]

    def close(self) -> None:
        """Nothing to close."""


def probe(answers: dict[str, dict[str, str]]) -> SshProbe:
    """A probe over two Huawei devices answering ``answers[name]``."""
    targets = [{"name": n, "host": "192.0.2.1", "device_type": "huawei", "username": "u",
                "password_env": "SSH_PW"} for n in answers]
    settings = SshSettings.model_validate({"type": "ssh", "targets": targets},
                                          context={"environ": ENV})

    def connect(target: SshTarget, timeouts: Timeouts) -> Session:
        return Session(answers[target.name])
    return SshProbe(settings, connect, now_ms=lambda: 1_800_000_000_000)


def test_a_megabyte_of_dashes_costs_its_device_only() -> None:
    """The line that froze the agent for hours is refused at once, naming the device and the
    size; the good device's interfaces are all there."""
    hostile = {**HUAWEI, "display interface": "-" * 2**20, "display interface brief":
               ("---- More ----" + "-" * 1000 + "\n") * 1000}
    p = probe({"good": HUAWEI, "evil": hostile})
    start = time.thread_time()
    samples = p.collect()
    spent = time.thread_time() - start
    check_samples(samples)
    good = [s for s in samples if s.kind == "netdev_if" and s.tags["device"] == "good"]
    assert len(good) >= 2
    errors = " ".join(p.last_errors["evil"])
    assert "evil (192.0.2.1:22)" in errors and "a line of 1048576 characters" in errors
    assert p.last_errors["good"] == []
    assert spent < 5.0  # the quadratic pattern took hours on this input; linear takes ms


def test_answers_over_the_poll_cap_end_the_poll() -> None:
    """Three answers of 6 MiB (each under the per-command cap) exceed the per-poll cap: the
    poll stops with an error naming the cap, the device is still reported as answering."""
    big = "x" * (6 * 2**20)
    p = probe({"evil": dict.fromkeys(HUAWEI, big)})
    samples = p.collect()
    assert any(f"over the cap of {MAX_POLL_CHARS}" in e for e in p.last_errors["evil"])
    netdev = [s for s in samples if s.kind == "netdev"]
    assert netdev[0].fields["up"] is True


def test_an_absurd_counter_costs_one_value() -> None:
    """A 20-digit error counter past int64 is a ParseError of that command only: the brief
    command's report and the uptime still arrive."""
    text = HUAWEI["display interface"]
    hostile = {**HUAWEI, "display interface": text.replace("Total Error:                 0",
                                                           "Total Error: " + "9" * 20, 1)}
    p = probe({"evil": hostile})
    samples = p.collect()
    check_samples(samples)
    netdev = next(s for s in samples if s.kind == "netdev")
    assert netdev.fields.get("uptime_s") == 36_674_400
    assert any("not a counter" in e for e in p.last_errors["evil"]), p.last_errors
    assert [s for s in samples if s.kind == "netdev_if"]  # from 'display interface brief'


class Trickle:
    """A device whose answer never ends (one line now and then, as a slow CLI): ``run`` returns
    only when the session is closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def run(self, command: str) -> str:
        """Block until closed, then fail as a dropped session does."""
        self.closed.wait(60)
        raise SshError(f"session lost during {command!r}")

    def close(self) -> None:
        """The agent hung up."""
        self.closed.set()


def test_a_never_ending_answer_ends_at_the_probe_timeout() -> None:
    """The poll is cut at the probe's timeout: the session is closed (socket released), the
    error names the device, and the next poll of that device runs instead of being skipped."""
    sessions: list[Trickle] = []

    def connect(target: SshTarget, timeouts: Timeouts) -> Trickle:
        sessions.append(Trickle())
        return sessions[-1]
    settings = SshSettings.model_validate(
        {"type": "ssh", "timeout": "1s", "targets": [
            {"name": "slow", "host": "192.0.2.7", "device_type": "huawei", "username": "u",
             "password_env": "SSH_PW"}]}, context={"environ": ENV})
    p = SshProbe(settings, connect, now_ms=lambda: 1_800_000_000_000)
    start = time.monotonic()
    samples = p.collect()
    assert time.monotonic() - start < 2.0
    assert sessions[0].closed.is_set()
    assert "slow (192.0.2.7:22): no complete answer within the probe timeout" in \
        p.last_errors["slow"][0]
    assert [s.fields for s in samples if s.kind == "netdev"] == [{"up": False}]
    wait_until(lambda: not p._busy, 5, "the poll thread to end")
    p.collect()
    assert len(sessions) == 2  # polled again, not skipped as still running


def test_the_scheduler_polls_a_stalling_device_on_time(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Scheduled every 1.5 s with a 1 s timeout, a device that never finishes an answer is
    polled on every run: no run is skipped as still running, none overruns its timeout."""
    sessions: list[Trickle] = []

    def connect(target: SshTarget, timeouts: Timeouts) -> Trickle:
        sessions.append(Trickle())
        return sessions[-1]
    settings = SshSettings.model_validate(
        {"type": "ssh", "timeout": "1s", "interval": "1500ms", "targets": [
            {"name": "slow", "host": "192.0.2.7", "device_type": "huawei", "username": "u",
             "password_env": "SSH_PW"}]}, context={"environ": ENV})
    spool = Spool(tmp_path / "spool.db", 2**20, 3600).open()
    scheduler = ProbeScheduler([ScheduledProbe("ssh", SshProbe(settings, connect), 1.5,
                                               settings.run_timeout(), 0.0)], spool)
    try:
        scheduler.start()

        def polled_three_times() -> bool:
            scheduler.tick()
            return len(sessions) >= 3 and scheduler.probes["ssh"].idle.is_set()
        wait_until(polled_three_times, 15, "three polls of the stalling device")
    finally:
        scheduler.shutdown()
        spool.close()
    assert "previous run not finished" not in caplog.text
    assert scheduler.probe_errors == 0  # no run past its timeout
    assert all(s.closed.is_set() for s in sessions)
