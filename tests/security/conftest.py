"""A district broker configured by `schoolmon broker-config` (real Mosquitto, real InfluxDB),
and MQTT clients that act as a compromised classroom PC would."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.brokerconfig import generate
from collector.config import load_collector_config
from collector.inventory import load_inventory
from common.wire import AgentIdentity, Topics
from tests.conftest import Services, wait_until
from tests.net import free_port, port_open

PREFIX = "schoolmon/v1"
TOPICS = Topics(PREFIX)
A = AgentIdentity("d1", "school-a", "a-gw")
B = AgentIdentity("d1", "school-b", "b-gw")
COLLECTOR_ID = "sec-collector"
COLLECTOR_PASSWORD = "collector-Secret-0815"






@dataclass
class Broker:
    """Mosquitto with the generated policy on a plain loopback listener."""

    dir: Path
    port: int
    collector_yaml: Path
    database: str
    collector_url: str  # the collector's InfluxDB

    def password(self, user: str) -> str:
        """The generated password of an agent, or the collector's."""
        if user == "collector":
            return COLLECTOR_PASSWORD
        return (self.dir / "broker" / "passwords" / f"{user}.password").read_text().strip()


def write_district(d: Path, port: int, influx_url: str, database: str,
                   agents: list[AgentIdentity]) -> Path:
    """inventory.yaml, the collector's password file and collector.yaml; the latter's path."""
    (d / "inventory.yaml").write_text(yaml.safe_dump({
        "districts": [{"id": "d1", "name": "D1"}],
        "schools": [{"id": s, "name": s, "district": "d1", "category": "urban", "classes": 10}
                    for s in sorted({a.school for a in agents})],
        "agents": [{"id": a.agent, "school": a.school} for a in agents],
    }))
    secret = d / "collector.password"
    secret.write_text(COLLECTOR_PASSWORD)
    secret.chmod(0o600)
    path = d / "collector.yaml"
    path.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port, "username": "collector",
                 "password_file": str(secret), "client_id": COLLECTOR_ID},
        "storage": {"kind": "influxdb1", "url": influx_url, "database": database},
        "write": {"flush_interval": "100ms",
                  # The attack tests count the collector's writes exactly: no stats points.
                  "stats_interval": "0s"},
        "inventory": "inventory.yaml",
    }))
    return path


@pytest.fixture(scope="package")
def broker(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Generate the broker files for schools A and B and start Mosquitto with them."""
    d = tmp_path_factory.mktemp("sec-broker")
    port = free_port()
    database = "security"
    subprocess.run(["curl", "-sf", "-XPOST", f"{services.influx_url}/query",
                    "--data-urlencode", f"q=CREATE DATABASE {database}"], check=True,
                   capture_output=True)
    collector_yaml = write_district(d, port, services.influx_url, database, [A, B])
    config = load_collector_config(collector_yaml)
    generate(config, load_inventory(d / "inventory.yaml"), d / "broker")
    (d / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nlog_dest file {d}/mosquitto.log\nuser root\n"
        + (d / "broker" / "broker.conf").read_text())
    proc = subprocess.Popen(["mosquitto", "-c", str(d / "mosquitto.conf")],
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 15, "mosquitto")
        assert proc.poll() is None, (d / "mosquitto.log").read_text()
        yield Broker(d, port, collector_yaml, database, services.influx_url)
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Client:
    """A paho MQTT v5 client whose answers (CONNACK, SUBACK, PUBACK, messages) are recorded."""

    paho: Any
    connack: str = ""
    suback: dict[int, list[int]] = field(default_factory=dict)
    puback: dict[int, str] = field(default_factory=dict)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    disconnects: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        """Until ``predicate()`` holds (AssertionError after ``timeout``)."""
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), "no answer from the broker"

    def subscribe(self, topic: str) -> list[int]:
        """SUBACK reason codes of one subscription (>= 0x80: refused)."""
        _rc, mid = self.paho.subscribe(topic, qos=1)
        self.wait(lambda: mid in self.suback)
        return self.suback[mid]

    def publish(self, topic: str, payload: bytes) -> str:
        """PUBACK reason of a QoS 1 publish."""
        info = self.paho.publish(topic, payload, qos=1)
        self.wait(lambda: info.mid in self.puback or self.disconnects > 0)
        return self.puback.get(info.mid, "disconnected")

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.paho.disconnect()
        self.paho.loop_stop()


def connect(broker: Broker, user: str, client_id: str, password: str | None = None) -> Client:
    """Connect as ``user`` with ``client_id``; ``connack`` says how it went."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=MQTTProtocolVersion.MQTTv5)
    paho.username_pw_set(user, broker.password(user) if password is None else password)
    client = Client(paho)

    def note(update: Any) -> None:
        with client.changed:
            update()
            client.changed.notify_all()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        note(lambda: setattr(client, "connack", "ok" if not reason.is_failure else str(reason)))

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        def update() -> None:
            client.disconnects += 1
            client.connack = client.connack or str(reason)
        note(update)

    paho.on_connect = on_connect
    paho.on_disconnect = on_disconnect
    paho.on_subscribe = lambda _c, _u, mid, reasons, _p: note(
        lambda: client.suback.__setitem__(mid, [r.value for r in reasons]))
    paho.on_publish = lambda _c, _u, mid, reason, _p: note(
        lambda: client.puback.__setitem__(mid, str(reason)))
    paho.on_message = lambda _c, _u, msg: note(
        lambda: client.messages.append((msg.topic, bytes(msg.payload))))
    paho.reconnect_delay_set(60, 60)  # one attempt: a refused client must stay refused
    paho.connect("127.0.0.1", broker.port, keepalive=30)
    paho.loop_start()
    client.wait(lambda: client.connack != "")
    return client
