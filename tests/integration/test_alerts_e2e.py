"""End to end: a real agent through Mosquitto and the collector into InfluxDB; its last will
becomes an "agent offline" mail at a real SMTP server."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from collector.alerts.engine import AlertEngine
from collector.alerts.settings import AlertRulesSettings
from collector.config import CollectorConfig
from collector.inventory import Inventory
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Topics
from tests.conftest import Services, influx_rows, schoolmon_cmd, wait_until
from tests.integration.alert_scenario import alert_settings
from tests.peers.smtp_server import USER, SmtpServer

pytestmark = pytest.mark.integration

WHO = AgentIdentity("e2e", "e2e-school", "e2e-gw")


@pytest.fixture
def alerting_collector(services: Services, influx_db: str, topic_prefix: str, tmp_path: Path,
                       smtp: SmtpServer) -> Iterator[Collector]:
    """A collector in this process with an AlertEngine as its observers, ticking every 0.2 s."""
    inventory = Inventory.model_validate({
        "districts": [{"id": WHO.district, "name": "测试区"}],
        "schools": [{"id": WHO.school, "name": "端到端小学", "district": WHO.district,
                     "category": "rural", "classes": 6}],
        "agents": [{"id": WHO.agent, "school": WHO.school, "role": "gateway"}],
    })
    settings = alert_settings(tmp_path / "alerts.db", smtp, language="en", group_wait="1s")
    engine = AlertEngine(settings, inventory, AlertRulesSettings())
    config = CollectorConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": topic_prefix,
                 "username": None, "client_id": "alerts-e2e-collector", "session_expiry": "60s"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": influx_db},
        # The default flush interval: the agent's last batch is stored (and observed) after its
        # last will arrived, which must not cancel the will.
        "write": {"flush_interval": "500ms", "max_retry_delay": "1s"},
    })
    collector = Collector(config, build_writer(config), observers=[engine.observe],
                          status_observers=[engine.observe_status])
    stop = threading.Event()
    ticker = threading.Thread(target=engine.run, args=(stop, 0.2), daemon=True)
    collector.start()
    assert collector.connected.wait(10)
    ticker.start()
    yield collector
    stop.set()
    ticker.join(10)
    collector.stop()
    engine.close()


@pytest.fixture
def published(services: Services, topic_prefix: str) -> Iterator[threading.Event]:
    """Set whenever the agent publishes a data batch (a plain subscriber on its topic)."""
    event = threading.Event()
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="alerts-e2e-watcher",
                          protocol=MQTTProtocolVersion.MQTTv5)
    watcher.on_message = lambda _c, _u, _m: event.set()
    watcher.connect("127.0.0.1", services.mqtt_port)
    watcher.subscribe(Topics(topic_prefix).data(WHO))
    watcher.loop_start()
    yield event
    watcher.disconnect()
    watcher.loop_stop()


@pytest.fixture
def agent_yaml(services: Services, topic_prefix: str, tmp_path: Path) -> Path:
    """The agent's config: the host probe every second."""
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "agent": {"id": WHO.agent, "school": WHO.school, "district": WHO.district},
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": topic_prefix},
        "spool": {"path": str(tmp_path / "spool.db")},
        "probes": [{"type": "host", "interval": "1s"}],
    }))
    return path


@pytest.mark.usefixtures("alerting_collector")
def test_agent_last_will_becomes_an_agent_offline_mail(
        services: Services, influx_db: str, agent_yaml: Path, smtp: SmtpServer,
        published: threading.Event) -> None:
    """agent run (host probe) -> broker -> collector -> InfluxDB; SIGKILL -> will -> mail."""

    def stored() -> int:
        return len(influx_rows(services.influx_url, influx_db,
                               f"SELECT * FROM host WHERE agent = '{WHO.agent}'"))

    agent = subprocess.Popen(schoolmon_cmd("agent", "run", "-c", str(agent_yaml)),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: stored() >= 2, 30, "the agent's samples in InfluxDB")
        assert smtp.messages == []  # alive and reporting: nothing to say
        # Kill it right after it published a batch: the collector stores (and observes) that
        # batch after the will has arrived; it was sent before, so the will must stand.
        published.clear()
        assert published.wait(10), "the agent published no more batches"
        agent.kill()  # no DISCONNECT: the broker publishes the last will
        agent.wait(10)
        wait_until(lambda: len(smtp.messages) >= 1, 30, "the agent offline mail")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)

    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail.authenticated_as == USER and mail.tls
    assert mail.message["subject"] == \
        f"[schoolmon FIRING] 端到端小学 ({WHO.school}): Agent offline"
    part = mail.message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    text = str(part.get_content())
    assert f"[critical] Agent offline - agent {WHO.agent} (new)" in text
    assert "reason: last will (connection lost)" in text
    assert stored() >= 3
