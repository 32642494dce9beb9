"""snmpsimd (the real SNMP simulator) serving recorded walks, one community per .snmprec file."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import wait_until


def free_udp_port() -> int:
    """A loopback UDP port nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int, community: str) -> bool:
    """True when Net-SNMP's own snmpget gets sysUpTime from the agent."""
    result = subprocess.run(["snmpget", "-v2c", "-c", community, "-r0", "-t0.5", "-On",
                             f"127.0.0.1:{port}", "1.3.6.1.2.1.1.3.0"],
                            capture_output=True, text=True, check=False)
    return result.returncode == 0 and "Timeticks" in result.stdout


@contextmanager
def run_snmpsim(records: dict[str, bytes], ready: str) -> Iterator[int]:
    """snmpsimd on a loopback UDP port serving ``records`` (community -> .snmprec bytes).

    Run as root it drops to nobody: its data and cache dirs must be readable (and the cache
    writable) by nobody, so they live in a world-readable temp dir, not in pytest's 0700 one.
    Yields the port once community ``ready`` answers.
    """
    top = Path(tempfile.mkdtemp(prefix="schoolmon-snmpsim-"))
    data, cache = top / "data", top / "cache"
    data.mkdir()
    cache.mkdir()
    for community, text in records.items():
        (data / f"{community}.snmprec").write_bytes(text)
    for path in (top, data, *data.iterdir()):
        path.chmod(0o755)
    cache.chmod(0o777)
    port = free_udp_port()
    with (top / "snmpsimd.log").open("wb") as log:
        proc = subprocess.Popen(
            ["snmpsimd", f"--data-dir={data}", f"--cache-dir={cache}",
             f"--agent-udpv4-endpoint=127.0.0.1:{port}", "--process-user=nobody",
             "--process-group=nogroup", "--logging-method=null"], stdout=log, stderr=log)
    try:
        wait_until(lambda: answers(port, ready), 60, "snmpsimd to answer")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(top, ignore_errors=True)
