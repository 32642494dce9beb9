"""The classroom browser test: a teacher's page served by `schoolmon speedtest serve`, run in
headless Chromium on the far side of a shaped veth pair; its result lands in InfluxDB as a
`speedtest` sample of the school, marked method=browser with the classroom, through the spool of
the agent beside the server, and measures the link within 10 %."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    ROOT,
    Services,
    influx_rows,
    schoolmon_cmd,
    start_collector_process,
    wait_until,
)
from tests.integration.test_librespeed import chromium_argv, reachable

pytestmark = pytest.mark.integration
RATE_MBIT = 20.0
ST_PORT = 8080


def test_classroom_page_result_is_stored_for_the_school_and_room(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path) -> None:
    """Teacher opens the page in classroom c-101; the stored download is within 10 %."""
    from bench.netlab import ShapedLink, available

    why = available()
    assert why is None, why
    mqtt = {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": topic_prefix}
    collector = tmp_path / "collector.yaml"
    collector.write_text(yaml.safe_dump({
        "mqtt": {**mqtt, "username": None, "client_id": f"bt-{topic_prefix[:8]}"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": influx_db},
        "write": {"flush_interval": "100ms"}}), encoding="utf-8")
    agent = tmp_path / "agent.yaml"
    agent.write_text(yaml.safe_dump({
        "agent": {"id": "gw1", "school": "s1", "district": "d1"},
        "mqtt": {**mqtt, "session_expiry": "1h"},
        "spool": {"path": str(tmp_path / "spool.db")},
        "publish": {"ack_timeout": "5s"},
        # A probe that runs often: the agent publishes what is due in its spool as it goes.
        "probes": [{"type": "host", "interval": "1s"}]}), encoding="utf-8")
    procs = [start_collector_process(collector)]
    query = ("SELECT * FROM speedtest WHERE \"method\" = 'browser' AND school = 's1'")
    try:
        with open(tmp_path / "agent.log", "wb") as log:
            procs.append(subprocess.Popen(schoolmon_cmd("agent", "run", "-c", str(agent)),
                                          stdout=log, stderr=log, cwd=ROOT))
        with ShapedLink(RATE_MBIT) as link:
            base = f"http://{link.server_ip}:{ST_PORT}"
            with open(tmp_path / "server.log", "wb") as log:
                procs.append(subprocess.Popen(link.command(link.server_ns, schoolmon_cmd(
                    "speedtest", "serve", "--listen", f"{link.server_ip}:{ST_PORT}",
                    "--agent-config", str(agent))), stdout=log, stderr=log, cwd=ROOT))
            wait_until(lambda: reachable(link, f"{base}/healthz"), 30, "speed-test server")
            with open(tmp_path / "chromium.log", "wb") as log:
                procs.append(subprocess.Popen(link.command(link.client_ns, chromium_argv(
                    tmp_path / "profile", f"{base}/?classroom=c-101&auto=1&seconds=6")),
                    stdout=log, stderr=log))
            wait_until(lambda: bool(influx_rows(services.influx_url, influx_db, query)), 90,
                       "the browser result in InfluxDB")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)
    rows = influx_rows(services.influx_url, influx_db, query)
    print(f"classroom browser test over {RATE_MBIT} Mbit/s: down {rows[0]['down_mbps']} up "
          f"{rows[0]['up_mbps']} rtt {rows[0]['rtt_ms']} ms")
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["classroom"], row["agent"], row["district"]) == ("c-101", "gw1", "d1")
    assert row["server"] == f"{base}/"
    down, up, rtt = float(row["down_mbps"]), float(row["up_mbps"]), float(row["rtt_ms"])
    assert abs(down - RATE_MBIT) <= 0.1 * RATE_MBIT, row
    assert 0.5 * RATE_MBIT <= up <= 1.1 * RATE_MBIT, row
    assert 0 < rtt < 200, row
