"""Speed-test server and client as real processes, on loopback and across a shaped veth link."""

from __future__ import annotations

import http.client
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from bench.netlab import ShapedLink
from tests.conftest import (
    Services,
    influx_rows,
    schoolmon_cmd,
    start_collector_process,
    wait_until,
)
from tests.net import free_port

pytestmark = pytest.mark.integration

RESULT_FIELDS = {"server", "down_mbps", "up_mbps", "rtt_ms", "jitter_ms", "bytes", "duration_s",
                 "down_bytes", "up_bytes", "down_s", "up_s", "streams_ok"}  # evidence (issue 18)




def answers(port: int) -> bool:
    """True when /healthz answers ok."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().read() == b"ok\n"
        conn.close()
        return ok
    except OSError:
        return False


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    """`schoolmon speedtest serve` on a loopback port."""
    port = free_port()
    proc = subprocess.Popen(schoolmon_cmd("speedtest", "serve", "--listen", f"127.0.0.1:{port}"),
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: answers(port), 15, "the speed-test server")
        yield port
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def get(port: int, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


@pytest.mark.parametrize("query", ["ckSize=0", "ckSize=1025", "ckSize=abc", "ckSize=-3"])
def test_bad_cksize_is_400(server_port: int, query: str) -> None:
    """Out-of-range or non-numeric ckSize gives 400."""
    assert get(server_port, "GET", f"/backend/garbage.php?{query}")[0] == 400


def test_librespeed_endpoints(server_port: int) -> None:
    """garbage, empty (GET/POST), getIP, healthz, 404 and 413."""
    status, data = get(server_port, "GET", "/backend/garbage.php?ckSize=2")
    assert status == 200 and len(data) == 2 * 2**20
    assert len(set(data[:4096])) > 200  # random bytes, not zeros: nothing to compress
    assert get(server_port, "GET", "/backend/empty.php") == (200, b"")
    assert get(server_port, "POST", "/backend/empty.php", b"x" * 100_000) == (200, b"")
    status, data = get(server_port, "GET", "/backend/getIP.php")
    assert status == 200 and orjson.loads(data)["processedString"] == "127.0.0.1"
    assert get(server_port, "GET", "/nope")[0] == 404
    status, _ = get(server_port, "POST", "/backend/empty.php", b"",
                    {"Content-Length": str(2**31)})
    assert status == 413


def test_server_survives_clients_that_vanish(server_port: int) -> None:
    """Clients that disconnect mid-download and mid-upload cost nothing."""
    for i in range(20):
        with socket.create_connection(("127.0.0.1", server_port)) as s:
            if i % 2:
                s.sendall(b"GET /backend/garbage.php?ckSize=1024 HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(65536)
            else:
                s.sendall(b"POST /backend/empty.php HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 1000000000\r\n\r\n" + b"\0" * 65536)
    assert answers(server_port)
    assert get(server_port, "GET", "/backend/garbage.php?ckSize=1")[0] == 200


def test_json_output_has_the_documented_fields(server_port: int) -> None:
    """`speedtest run --json` prints one object with the speedtest kind's fields."""
    out = subprocess.run(schoolmon_cmd("speedtest", "run", "--server",
                                       f"http://127.0.0.1:{server_port}", "--duration", "1",
                                       "--streams", "2", "--json"),
                         capture_output=True, text=True, timeout=60, check=True)
    result = orjson.loads(out.stdout)
    assert set(result) == RESULT_FIELDS
    assert result["down_mbps"] > 100 and result["up_mbps"] > 100 and result["rtt_ms"] > 0


def run_in_link(link: ShapedLink, *args: str) -> dict[str, float]:
    """Serve in one namespace, test from the other; the --json result."""
    server = subprocess.Popen(link.command(link.server_ns, schoolmon_cmd(
        "speedtest", "serve", "--listen", f"{link.server_ip}:8080")),
        stderr=subprocess.DEVNULL)
    try:
        probe = link.command(link.client_ns, ["python3", "-c",
                             f"import socket; socket.create_connection(('{link.server_ip}', "
                             "8080), 1)"])
        wait_until(lambda: subprocess.run(probe, capture_output=True,
                                          check=False).returncode == 0, 15,
                   "the server in its namespace")
        out = subprocess.run(link.command(link.client_ns, schoolmon_cmd(
            "speedtest", "run", "--server", f"http://{link.server_ip}:8080", "--json", *args)),
            capture_output=True, text=True, timeout=120, check=True)
        parsed: dict[str, float] = orjson.loads(out.stdout)
        return parsed
    finally:
        server.terminate()
        server.wait(10)


def test_10_mbit_link_measured_within_10_percent() -> None:
    """tbf at 10 Mbit/s each way: download and upload within +-10 %."""
    with ShapedLink(10) as link:
        result = run_in_link(link, "--duration", "4")
    assert 9.0 <= result["down_mbps"] <= 11.0, result
    assert 9.0 <= result["up_mbps"] <= 11.0, result


def test_byte_cap_stops_the_test() -> None:
    """--max-mb ends both directions early, close to the cap."""
    with ShapedLink(10) as link:
        result = run_in_link(link, "--duration", "20", "--max-mb", "4")
    cap = 4 * 2**20
    assert cap - 200_000 <= result["bytes"] <= cap, result
    assert result["duration_s"] < 10, result  # 4 MiB at 10 Mbit/s is ~3.4 s, not 2 x 20 s


def test_pick_server_skips_dead_servers(server_port: int) -> None:
    """The lowest-latency server that answers is chosen; none answering is an error."""
    from agent.speedtest.client import pick_server

    dead = f"http://127.0.0.1:{free_port()}"
    live = f"http://127.0.0.1:{server_port}"
    assert pick_server([dead, live]) == live
    with pytest.raises(OSError, match="no speed-test server answered"):
        pick_server([dead])


def test_agent_once_delivers_a_speedtest_sample(server_port: int, services: Services,
                                                influx_db: str, topic_prefix: str,
                                                tmp_path: Path) -> None:
    """A speedtest probe in `agent run --once` tests at once; its sample lands in InfluxDB."""
    port = services.mqtt_port
    (tmp_path / "collector.yaml").write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": topic_prefix,
                 "username": None, "client_id": "st-collector"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": influx_db},
    }))
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump({
        "agent": {"id": "st-gw", "school": "st-school", "district": "st"},
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": topic_prefix},
        "spool": {"path": str(tmp_path / "spool.db")},
        "probes": [{"type": "speedtest", "servers": [f"http://127.0.0.1:{server_port}"],
                    "duration": "1s", "streams": 2, "daily_budget_mb": 500}],
    }))
    collector = start_collector_process(tmp_path / "collector.yaml")
    try:
        result = subprocess.run(schoolmon_cmd("agent", "run", "--once", "--timeout", "30", "-c",
                                              str(tmp_path / "agent.yaml")),
                                capture_output=True, text=True, timeout=90, check=False)
        assert result.returncode == 0, result.stderr
    finally:
        collector.terminate()
        collector.wait(10)
    rows = influx_rows(services.influx_url, influx_db, "SELECT * FROM speedtest")
    assert len(rows) == 1
    row = rows[0]
    assert row["school"] == "st-school" and row["server"] == f"http://127.0.0.1:{server_port}"
    assert row["down_mbps"] > 100 and row["up_mbps"] > 100  # type: ignore[operator]
    assert row["bytes"] <= 500 * 2**20  # type: ignore[operator]
