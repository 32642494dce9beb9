"""`schoolmon collector run` with everything on: rules, alerts, dashboard feed.

The parts are tested one by one elsewhere; this checks the wiring of the real command: an agent's
samples land, the rules engine writes compliance points, the dashboard feed writes agent_status,
and an agent's last will becomes an alert mail at a real SMTP server.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import Services, influx_rows, schoolmon_cmd, wait_until
from tests.peers.smtp_server import start_smtp

pytestmark = pytest.mark.integration


def test_collector_command_runs_rules_alerts_and_feed(services: Services, influx_db: str,
                                                      topic_prefix: str, tmp_path: Path) -> None:
    """One agent, one school: compliance points, agent_status, and an offline mail."""
    smtp = start_smtp(tmp_path, "smtp-Secret-1")
    try:
        (tmp_path / "inventory.yaml").write_text(yaml.safe_dump({
            "districts": [{"id": "cli-d", "name": "CLI district"}],
            "schools": [{"id": "cli-s", "name": "天河第一小学", "district": "cli-d",
                         "category": "urban", "classes": 12, "contracted_mbps": 100,
                         "classrooms": [{"id": "101"}]}],
            "agents": [{"id": "cli-gw", "school": "cli-s"}],
        }))
        password = tmp_path / "smtp.password"
        password.write_text("smtp-Secret-1")
        password.chmod(0o600)
        collector_yaml = tmp_path / "collector.yaml"
        collector_yaml.write_text(yaml.safe_dump({
            "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port,
                     "topic_prefix": topic_prefix, "username": None, "client_id": "cli-full"},
            "storage": {"kind": "influxdb1", "url": services.influx_url,
                        "database": influx_db},
            "write": {"flush_interval": "100ms"},
            "inventory": "inventory.yaml",
            "policies": ["cn-moe-2017"],
            "rules": {"interval": "1s"},
            "alerts": {"smtp": {"host": "127.0.0.1", "port": smtp.port, "starttls": True,
                                "username": "schoolmon", "password_file": str(password),
                                "ca_file": str(smtp.ca_file)},
                       "from": "schoolmon@district.example", "to": ["it@district.example"],
                       "language": "en", "group_wait": "1s",
                       "state_path": str(tmp_path / "alerts.db")},
        }))
        agent_yaml = tmp_path / "agent.yaml"
        agent_yaml.write_text(yaml.safe_dump({
            "agent": {"id": "cli-gw", "school": "cli-s", "district": "cli-d"},
            "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port,
                     "topic_prefix": topic_prefix, "keepalive": "2s"},
            "spool": {"path": str(tmp_path / "spool.db")},
            "probes": [{"type": "host", "interval": "1s", "jitter": "0s"}],
        }))
        log = tmp_path / "collector.log"
        with log.open("wb") as out:
            collector = subprocess.Popen(schoolmon_cmd("collector", "run", "-c",
                                                       str(collector_yaml)), stderr=out)
        try:
            wait_until(lambda: b"subscribed" in log.read_bytes(), 20, "collector subscribed")
            agent = subprocess.Popen(schoolmon_cmd("agent", "run", "-c", str(agent_yaml)),
                                     stderr=subprocess.DEVNULL)
            wait_until(lambda: bool(influx_rows(services.influx_url, influx_db,
                                                "SELECT * FROM host")), 30, "host samples")
            wait_until(lambda: bool(influx_rows(
                services.influx_url, influx_db,
                "SELECT * FROM compliance WHERE school = 'cli-s'")), 30, "compliance points")
            wait_until(lambda: bool(influx_rows(services.influx_url, influx_db,
                                                "SELECT * FROM agent_status")), 30,
                       "agent_status points")
            # SIGKILL: no clean disconnect, so the broker publishes the agent's last will.
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait(10)
            wait_until(lambda: any("offline" in str(m.message["Subject"]).lower()
                                   for m in smtp.messages), 90, "the agent-offline mail")
            mail = next(m for m in smtp.messages
                        if "offline" in str(m.message["Subject"]).lower())
            assert "天河第一小学" in str(mail.message["Subject"]) + mail.message.as_string()
            assert mail.tls and mail.authenticated_as == "schoolmon"
        finally:
            collector.send_signal(signal.SIGTERM)
            assert collector.wait(60) == 0
        assert b"Traceback" not in log.read_bytes()
        assert b"smtp-Secret-1" not in log.read_bytes()
    finally:
        smtp.stop()


def test_an_alert_state_it_cannot_open_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """alerts.state_path under a file (no directory can be made there): one line, exit 1,
    before anything connects (no broker or storage runs for this test)."""
    (tmp_path / "not-a-dir").write_text("")
    config = tmp_path / "collector.yaml"
    config.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": 1, "username": None},
        "storage": {"kind": "influxdb1", "url": "http://127.0.0.1:1", "database": "x"},
        "alerts": {"smtp": {"host": "127.0.0.1", "port": 1}, "from": "a@d.example",
                   "to": ["b@d.example"], "state_path": str(tmp_path / "not-a-dir/alerts.db")},
    }))
    proc = subprocess.run(schoolmon_cmd("collector", "run", "-c", str(config)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "alerts.state_path" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
