"""Agent -> 3-node NATS cluster (MQTT 3.1.1 listener, JetStream R3) -> collector, with faults.

A bystander node, then the agent's own node (the agent lists all three: mqtt.servers),
SIGKILLed under load and restarted, then the collector: every sample produced is stored exactly
once.  And a protocol the broker
does not speak (MQTT v5 against NATS) is one clear line and an exit, not a hang.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.config import AgentConfig
from agent.runner import Agent
from agent.scheduler import ScheduledProbe
from tests.conftest import (
    Services,
    schoolmon_cmd,
    start_collector_process,
    start_services,
    wait_until,
)
from tests.integration.test_faults import (
    RECENT_MS,
    WHO,
    CountingProbe,
    drain_and_check,
    kill9,
    run_agent,
    stored_times,
)

# Long fault scenarios: `make test-faults` (README), run by CI beside `make test`.
pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Services]:
    """A 3-node NATS cluster of this test's own."""
    svc = start_services(tmp_path / "nats", "nats-cluster")
    yield svc
    svc.stop("nats-cluster")


def kill_node(svc: Services, node: str) -> None:
    """SIGKILL a node and forget its pid file.  kill9 returns once the process is a zombie,
    and until this box's init reaps it `kill -0` still succeeds: services.sh would take the
    node for running and not start it again (the cluster then lost quorum at the next kill:
    the own-node kill failed in most runs before this)."""
    kill9(svc, node)
    (svc.dir / f"{node}.pid").unlink()


def mqtt_ports(svc: Services) -> list[int]:
    """The MQTT listener of each node, in node order."""
    return [int(p) for p in svc.env["NATS_MQTT_PORTS"].split(",")]


def collector_yaml(tmp: Path, port: int, prefix: str, url: str, db: str, *,
                   protocol: str = "v311") -> Path:
    """A collector on one node; its session is kept so a restart finds its queue."""
    path = tmp / f"collector-{protocol}.yaml"
    path.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix, "username": None,
                 "client_id": "cluster-collector", "session_expiry": "1h",
                 "protocol": protocol},
        "storage": {"kind": "influxdb1", "url": url, "database": db},
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s"},
    }))
    return path


def agent_cfg(tmp: Path, ports: list[int], prefix: str) -> AgentConfig:
    """An agent speaking MQTT 3.1.1 to every node (the first one first), short ack timeout,
    reconnect and PUBACK timeout (a node that stops storing is left after 5 s)."""
    return AgentConfig.model_validate({
        "agent": {"id": WHO.agent, "school": WHO.school, "district": WHO.district},
        "mqtt": {"servers": [f"127.0.0.1:{p}" for p in ports], "topic_prefix": prefix,
                 "session_expiry": "1h", "protocol": "v311"},
        "spool": {"path": str(tmp / "spool.db"), "max_mb": 64},
        "publish": {"ack_timeout": "3s", "reconnect_max": "1s", "puback_timeout": "5s"},
    })


def test_cluster_node_and_collector_killed_lose_nothing(cluster: Services, services: Services,
                                                        influx_db: str, topic_prefix: str,
                                                        tmp_path: Path) -> None:
    """Kill node 3 and the collector under load: every sample stored once."""
    url = services.influx_url
    ports = mqtt_ports(cluster)
    path = collector_yaml(tmp_path, ports[1], topic_prefix, url, influx_db)
    collector = start_collector_process(path)
    probe = CountingProbe(RECENT_MS + 200_000, per_collect=10)
    agent = Agent(agent_cfg(tmp_path, ports, topic_prefix),
                  probes=[ScheduledProbe("count", probe, 0.5, 5.0, 0.0)])
    stop, thread = run_agent(agent)
    try:
        wait_until(lambda: len(stored_times(url, influx_db)) >= 20, 60, "first samples stored")
        # A bystander node, then the agent's own node (nats-1, its first server): the agent
        # moves to nats-2 at once, and away from any node that stops acking (PUBACK watchdog).
        for node in ("nats-3", "nats-1"):
            kill_node(cluster, node)
            killed_at = len(probe.produced)
            wait_until(lambda k=killed_at: len(probe.produced) >= k + 30, 30,  # type: ignore[misc]
                       f"samples produced while {node} is down")
            cluster.start(node)
            at_restart = len(stored_times(url, influx_db))
            wait_until(lambda r=at_restart: len(stored_times(url, influx_db)) > r, 60,  # type: ignore[misc]
                       f"samples stored after {node} came back")
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
        dead_at = len(probe.produced)
        wait_until(lambda: len(probe.produced) >= dead_at + 30, 30,
                   "samples produced while the collector is dead")
        collector = start_collector_process(path)
        drain_and_check(agent, probe, url, influx_db, timeout=90)
        assert len(stored_times(url, influx_db)) == len(probe.produced)  # produced = stored
    finally:
        stop.set()
        thread.join(10)
        collector.terminate()
        collector.wait(10)


def test_v5_against_a_311_broker_is_one_line_and_an_exit(cluster: Services, services: Services,
                                                         influx_db: str, topic_prefix: str,
                                                         tmp_path: Path) -> None:
    """mqtt.protocol v5 against NATS: the collector says so once and stops."""
    path = collector_yaml(tmp_path, mqtt_ports(cluster)[0], topic_prefix, services.influx_url,
                          influx_db, protocol="v5")
    begun = time.monotonic()
    proc = subprocess.run(schoolmon_cmd("collector", "run", "-c", str(path)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert time.monotonic() - begun < 30
    lines = [ln for ln in proc.stderr.splitlines() if "does not speak" in ln]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "does not speak MQTT v5 (mqtt.protocol: v5); set mqtt.protocol: v311" in lines[0]
