"""Hostile speed-test servers on loopback (tests/peers/hostile_http.py): whatever the server
does, a test ends at its deadline, releases its sockets, names the server, moves no more bytes
than its cap and never reports a figure it did not measure."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Iterator

import pytest

from agent.probes.base import ProbeError
from agent.probes.speedtest import SpeedtestSettings
from agent.speedtest.client import SpeedtestError, run_speedtest
from tests.conftest import schoolmon_cmd, wait_until
from tests.peers.hostile_http import HostileHttp

MIB = 1 << 20


@pytest.fixture
def peer(request: pytest.FixtureRequest) -> Iterator[HostileHttp]:
    """The hostile server of the test's mode (indirect parameter)."""
    with HostileHttp(request.param) as server:
        yield server


def released(peer: HostileHttp) -> None:
    """Every connection the test opened is closed by it, soon after it returned."""
    wait_until(lambda: peer.open_connections == 0, 5, "the client to close its sockets")
    assert peer.accepted >= 1


@pytest.mark.parametrize(("peer", "why"), [("slow", "deadline of 2s"),
                                           ("silent", "silent for 1s|deadline of 2s")],
                         indirect=["peer"])
def test_a_stalling_server_ends_at_the_deadline(peer: HostileHttp, why: str) -> None:
    """One byte every 0.2 s (each restarting a 1 s socket timeout) or no answer at all: the test
    ends within its 2 s deadline with an error naming the server, and closes its sockets."""
    start = time.monotonic()
    with pytest.raises(SpeedtestError, match=why) as info:
        run_speedtest(peer.url, duration=1, timeout=1, deadline_s=2)
    elapsed = time.monotonic() - start
    assert f"127.0.0.1:{peer.port}" in str(info.value)
    assert elapsed < 3.5, elapsed  # the old client read for days
    assert info.value.moved < 1000  # a few slow bytes and the request, charged
    released(peer)


@pytest.mark.parametrize("peer", ["chunked"], indirect=True)
def test_a_chunked_backend_gives_an_error_not_zero(peer: HostileHttp) -> None:
    """garbage.php without a Content-Length: no figure (was 'down_mbps: 0.0', exit 0)."""
    with pytest.raises(SpeedtestError, match="without Content-Length") as info:
        run_speedtest(peer.url, duration=1, timeout=1, streams=2)
    assert "download did not measure" in str(info.value)
    released(peer)
    cli = subprocess.run(schoolmon_cmd("speedtest", "run", "--server", peer.url, "--duration",
                                       "1", "--json"), capture_output=True, text=True,
                         timeout=60, check=False)
    assert cli.returncode == 1 and cli.stdout == ""
    assert "without Content-Length" in cli.stderr


@pytest.mark.parametrize("peer", ["endless"], indirect=True)
def test_endless_bodies_stop_at_the_byte_cap(peer: HostileHttp) -> None:
    """A download body of 200 GB is drained only to the cap; all bytes, both directions, are
    within it; the upload's share is what the download left."""
    cap = 16 * MIB
    result = run_speedtest(peer.url, duration=3, timeout=1, streams=2, byte_cap=cap)
    assert cap - MIB <= result.bytes <= cap
    assert peer.received <= cap - result.down_bytes
    assert result.down_bytes > 0 and result.up_bytes > 0 and result.streams_ok >= 1
    released(peer)


@pytest.mark.parametrize("peer", ["huge_empty"], indirect=True)
def test_a_huge_latency_answer_is_refused_at_its_head(peer: HostileHttp) -> None:
    """empty.php claiming 200 GB: refused before its body is read (the old client held 2 GB
    in memory and raised MemoryError on a claimed 200 GB)."""
    with pytest.raises(SpeedtestError, match="announced 200000000000 bytes") as info:
        run_speedtest(peer.url, duration=1, timeout=1, byte_cap=64 * MIB)
    assert info.value.moved <= 70_000  # at most the first reads: the head and a little body
    released(peer)


@pytest.mark.parametrize("peer", ["fail_upload"], indirect=True)
def test_a_failed_upload_is_charged_and_gives_no_sample(peer: HostileHttp) -> None:
    """The download worked, the uploads were refused: an error, no sample, and what it moved is
    charged to the day's budget; the next poll backs off instead of testing again."""
    settings = SpeedtestSettings.model_validate({
        "type": "speedtest", "servers": [peer.url], "duration": "1s", "streams": 2,
        "timeout": "10s", "daily_budget_mb": 64, "run_at_start": True})
    probe = settings.build()
    with pytest.raises(ProbeError, match="upload did not measure") as info:
        probe.collect()
    assert f"127.0.0.1:{peer.port}" in str(info.value)
    assert probe.state.bytes_used > MIB  # the download and the refused uploads
    assert probe.collect() == []  # backing off: no test on the next poll
    assert probe.state.failures == 1
    released(peer)


@pytest.mark.parametrize("peer", ["slow"], indirect=True)
def test_the_probe_ends_within_its_timeout(peer: HostileHttp) -> None:
    """The scheduled probe with timeout 3s against the slow server: a ProbeError well before
    the scheduler's timeout, so its next run is never skipped."""
    settings = SpeedtestSettings.model_validate({
        "type": "speedtest", "servers": [peer.url], "duration": "1s", "timeout": "3s"})
    probe = settings.build()
    start = time.monotonic()
    with pytest.raises(ProbeError, match="deadline"):
        probe.collect_now()
    assert time.monotonic() - start < settings.run_timeout()
    assert probe.now().tzinfo is dt.UTC
    released(peer)
