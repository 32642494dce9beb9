"""``schoolmon simulate`` live, as the command runs it: real broker, collector and InfluxDB."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import orjson
import pytest
import yaml

from collector.config import CollectorConfig
from collector.inventory import load_inventory
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity
from schoolmon.cli import build_parser
from schoolmon.simulate import cmd_simulate
from tests.conftest import Services, influx_rows

pytestmark = pytest.mark.integration


def parse(*argv: str) -> argparse.Namespace:
    """The command's arguments, as ``schoolmon simulate`` parses them."""
    return build_parser().parse_args(["simulate", *argv])


def test_live_simulation_publishes_acks_and_takes_agents_offline(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Three schools for four seconds at one-second ticks; half the PCs go offline halfway."""
    raw = {"mqtt": {"host": "127.0.0.1", "port": services.mqtt_port,
                    "topic_prefix": topic_prefix, "username": None,
                    "client_id": "sim-cli-collector", "session_expiry": "60s"},
           "storage": {"kind": "influxdb1", "url": services.influx_url, "database": influx_db},
           "write": {"flush_interval": "100ms"}}
    config_file = tmp_path / "collector.yaml"
    config_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "offline_agent_share": 0.5,
        "classes": {"urban": {"min": 2, "max": 3}, "rural": {"min": 2, "max": 2},
                    "teaching_point": {"min": 1, "max": 1}}}), encoding="utf-8")
    statuses: dict[str, str] = {}
    lock = threading.Lock()

    def on_status(who: AgentIdentity, status: str, _ms: int) -> None:
        with lock:
            statuses[who.agent] = status

    config = CollectorConfig.model_validate(raw)
    collector = Collector(config, build_writer(config), status_observers=[on_status])
    collector.start()
    try:
        assert collector.connected.wait(10)
        time.sleep(0.3)
        started = time.monotonic()
        rc = cmd_simulate(parse(
            "-c", str(config_file), "--schools", "3", "--interval", "1", "--duration", "4",
            "--seed", "3", "--spec", str(spec), "--inventory-out", str(tmp_path / "inv.yaml"),
            "--plan-out", str(tmp_path / "plan.json")))
        elapsed = time.monotonic() - started
    finally:
        collector.stop()
    assert rc == 0
    assert 3.0 <= elapsed < 20
    out = capsys.readouterr().out
    assert "3 schools" in out and "all acknowledged" in out
    inventory = load_inventory(tmp_path / "inv.yaml")
    plan = orjson.loads((tmp_path / "plan.json").read_bytes())
    assert [s.id for s in inventory.schools] == [s["id"] for s in plan["schools"]]
    gateways = {s["gateway_agent"] for s in plan["schools"]}
    hosts = influx_rows(services.influx_url, influx_db,
                        'SELECT count("uptime_s") FROM "host" GROUP BY "agent"')
    per_agent = {row["agent"]: row["count"] for row in hosts}
    assert all(per_agent.get(g, 0) >= 3 for g in gateways), per_agent  # a tick a second
    offline = {c["agent"] for s in plan["schools"] for c in s["classrooms"]
               if c["agent_goes_offline"]}
    assert offline
    # Every agent that published announced itself online first (classroom PCs publish only
    # in school hours, so at night only the gateways do); the planned ones ended offline.
    agents = influx_rows(services.influx_url, influx_db,
                         'SELECT count("rss_mb") FROM "agent" GROUP BY "agent"')
    published = {row["agent"] for row in agents}
    assert gateways <= published
    with lock:
        assert {a for a, st in statuses.items() if st == "offline"} == offline
        assert {a for a, st in statuses.items() if st == "online"} == published - offline


def test_without_a_broker_the_command_says_so(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """No broker: one line on stderr, exit 1, no traceback."""
    config_file = tmp_path / "collector.yaml"
    config_file.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": 9, "username": None},
        "storage": {"kind": "influxdb1"}}), encoding="utf-8")
    args = parse("-c", str(config_file), "--schools", "2", "--duration", "1")
    assert cmd_simulate(args) == 1
    assert "no MQTT connection to 127.0.0.1:9" in capsys.readouterr().err
