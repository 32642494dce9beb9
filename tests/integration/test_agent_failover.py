"""An agent with two brokers (mqtt.servers) whose broker stops acknowledging: the PUBACK
watchdog moves it to the other one, and every sample is stored exactly once.

Two real Mosquittos, one collector on each, one InfluxDB database.  Broker A is SIGSTOPped:
its TCP connections stay open (the kernel keeps them) but no PUBACK comes: the stall a NATS
node showed after a restart (docs/scaling.md).  The agent's keepalive is long (60 s), so only
the watchdog (puback_timeout 2 s) can notice in time.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent.config import AgentConfig
from agent.runner import Agent
from agent.scheduler import ScheduledProbe
from tests.conftest import Services, start_collector_process, start_services, wait_until
from tests.integration.test_faults import (
    RECENT_MS,
    WHO,
    CountingProbe,
    collector_yaml,
    drain_and_check,
    kill9,
    run_agent,
    stored_times,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def two_brokers(tmp_path: Path) -> Iterator[list[Services]]:
    """Two Mosquittos of this test's own (one may be stopped: none other is disturbed)."""
    brokers = [start_services(tmp_path / name, "mosquitto") for name in ("a", "b")]
    yield brokers
    for svc in brokers:
        if psutil.Process(pid(svc)).status() == psutil.STATUS_STOPPED:
            # Resumed, it would first serve its backlog (SIGTERM waited 10 s): it goes now.
            kill9(svc, "mosquitto")
        svc.stop()


def pid(svc: Services) -> int:
    """Mosquitto's process id."""
    return int((svc.dir / "mosquitto.pid").read_text())


def test_a_stopped_broker_is_left_and_nothing_is_lost_or_doubled(
        two_brokers: list[Services], services: Services, *, influx_db: str, topic_prefix: str,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SIGSTOP the agent's broker: one switch line, delivery on through the other broker,
    and after a drain produced = stored, one point per time."""
    url = services.influx_url
    ports = [svc.mqtt_port for svc in two_brokers]
    collectors = [start_collector_process(collector_yaml(
        tmp_path, port, topic_prefix, url, influx_db, client_id=f"failover-{i}"))
        for i, port in enumerate(ports)]
    cfg = AgentConfig.model_validate({
        "agent": {"id": WHO.agent, "school": WHO.school, "district": WHO.district},
        "mqtt": {"servers": [f"127.0.0.1:{p}" for p in ports], "topic_prefix": topic_prefix,
                 "session_expiry": "1h", "keepalive": "60s"},
        "spool": {"path": str(tmp_path / "spool.db"), "max_mb": 64},
        "publish": {"ack_timeout": "3s", "puback_timeout": "2s", "reconnect_max": "1s",
                    "linger": "0s"},
    })
    probe = CountingProbe(RECENT_MS + 400_000, per_collect=5)
    agent = Agent(cfg, probes=[ScheduledProbe("count", probe, 0.3, 5.0, 0.0)])
    stop, thread = run_agent(agent)
    try:
        with caplog.at_level(logging.WARNING, logger="agent.link"):
            wait_until(lambda: len(stored_times(url, influx_db)) >= 20, 30,
                       "first samples stored through broker A")
            os.kill(pid(two_brokers[0]), signal.SIGSTOP)
            stopped_at = len(probe.produced)
            wait_until(lambda: len(stored_times(url, influx_db)) >= stopped_at + 20, 30,
                       "samples stored through broker B")
        link = agent.publisher.link
        assert link is not None and link.server == ("127.0.0.1", ports[1])
        switches = [r.getMessage() for r in caplog.records if r.name == "agent.link"]
        assert switches == [f"no PUBACK from 127.0.0.1:{ports[0]} for 2s; "
                            f"connecting to 127.0.0.1:{ports[1]}"]
        drain_and_check(agent, probe, url, influx_db)
        assert len(stored_times(url, influx_db)) == len(probe.produced)
    finally:
        stop.set()
        thread.join(10)
        for proc in collectors:
            proc.terminate()
            proc.wait(10)
