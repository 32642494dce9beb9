"""The demo's district and configs: the simulated district plus this machine, collector.yaml
(inventory, policies, alerts to the demo's SMTP server) and agent.yaml for this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

LOCAL_SCHOOL = "demo-local"
POLICIES = ("cn-moe-2017", "guangzhou-2017")


def district(schools: int, seed: int) -> tuple[Any, Any]:
    """The simulated district's plan, and its inventory with the local school added."""
    from collector.inventory import AgentEntry, School
    from schoolmon.sim.inventory import plan_inventory
    from schoolmon.sim.plan import make_plan
    from schoolmon.sim.spec import SimulationSpec

    plan = make_plan(SimulationSpec(), schools, seed=seed)
    inv = plan_inventory(plan)
    local = School(id=LOCAL_SCHOOL, name="本机 (this machine)", district=plan.districts[0],
                   category="urban", classes=24, contracted_mbps=1000)
    inventory = inv.model_copy(update={
        "schools": [*inv.schools, local],
        "agents": [*inv.agents, AgentEntry(id="demo-gw", school=LOCAL_SCHOOL, role="gateway")]})
    return plan, inventory


def write_configs(workdir: Path, env: dict[str, str], speedtest_url: str, *, smtp_port: int,
                  inventory: Any, lang: str) -> tuple[Path, Path]:
    """collector.yaml (inventory, policies, alerts to the local SMTP server) and agent.yaml."""
    from schoolmon.sim.inventory import write_inventory

    write_inventory(inventory, workdir / "inventory.yaml")
    mqtt = {"host": env["MQTT_HOST"], "port": int(env["MQTT_PORT"])}
    collector = {
        "mqtt": {**mqtt, "username": None, "client_id": "demo-collector"},
        "storage": {"kind": "influxdb1", "url": env["INFLUXDB_URL"], "database": "schoolmon"},
        "write": {"flush_interval": "200ms"},
        "inventory": "inventory.yaml", "policies": list(POLICIES),
        # A pass every few seconds, so the demo's minute shows compliance and alerts; the
        # simulated schools report every 30 min (SIM_INTERVAL_S), so "recent" must be longer.
        "rules": {"interval": "5s", "recent": "1h"},
        "alerts": {"smtp": {"host": "127.0.0.1", "port": smtp_port, "starttls": False},
                   "from": "demo@schoolmon.example", "to": ["district-it@schoolmon.example"],
                   "language": lang, "group_wait": "2s", "group_interval": "5s",
                   "state_path": str(workdir / "alerts.db")},
    }
    agent = {
        "agent": {"id": "demo-gw", "school": LOCAL_SCHOOL, "district": inventory.districts[0].id},
        "mqtt": {**mqtt, "session_expiry": "1h"},
        "spool": {"path": str(workdir / "spool.db"), "max_mb": 16},
        "publish": {"ack_timeout": "10s"},
        "probes": [
            {"type": "iface", "interval": "2s"}, {"type": "host", "interval": "5s"},
            {"type": "reach", "interval": "5s", "count": 3, "timeout": "1s", "targets": [
                {"name": "broker", "host": "127.0.0.1", "role": "district", "method": "tcp",
                 "port": int(env["MQTT_PORT"])},
                {"name": "loopback", "host": "127.0.0.1", "role": "gateway", "method": "icmp"},
                # The demo may run offline: the local speed-test server stands in for the
                # internet, so this machine's school has a figure for the internet rule.
                {"name": "internet-stand-in", "host": "127.0.0.1", "role": "internet",
                 "method": "tcp", "port": int(speedtest_url.rsplit(":", 1)[1])}]},
            {"type": "speedtest", "interval": "10s", "servers": [speedtest_url],
             "duration": "2s", "streams": 2,
             "run_at_start": True, "daily_budget_mb": 4000},
        ],
    }
    paths = workdir / "collector.yaml", workdir / "agent.yaml"
    for path, data in zip(paths, (collector, agent), strict=True):
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
    return paths
