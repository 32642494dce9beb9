"""broker-config's account for the enrolment service (``enrol-admin``), on a real Mosquitto
with the dynamic-security plugin: made only when its file asks for it, its password kept,
allowed the plugin's control topic and nothing else; an agent is refused that topic.
"""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.brokerconfig import ENROL_ADMIN, ENROL_ADMIN_FILE
from common.wire import AgentIdentity
from schoolmon.enrol import CONTROL, BrokerAdmin, EnrolError
from tests.conftest import schoolmon_cmd, wait_until
from tests.net import free_port, port_open
from tests.security.conftest import (
    PREFIX,
    TOPICS,
    A,
    B,
    Broker,
    connect,
    write_district,
)

pytestmark = pytest.mark.integration
REFUSED = 0x80


def _broker_config(collector_yaml: Path, out: Path) -> None:
    result = subprocess.run(schoolmon_cmd("broker-config", "-c", str(collector_yaml), "--out",
                                          str(out)), capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr


def _clients(out: Path) -> set[str]:
    state = json.loads((out / "dynamic-security.json").read_text())
    return {c["username"] for c in state["clients"]}


def test_no_enrol_admin_unless_asked(tmp_path: Path) -> None:
    """Without its file, broker-config makes no enrolment account (nor the file)."""
    collector_yaml = write_district(tmp_path, 1883, "http://127.0.0.1:1", "x", [A, B])
    _broker_config(collector_yaml, tmp_path / "broker")
    assert _clients(tmp_path / "broker") == {"collector", A.agent, B.agent}
    assert not (tmp_path / "broker" / ENROL_ADMIN_FILE).exists()


@pytest.fixture
def enrol_broker(tmp_path: Path) -> Iterator[Broker]:
    """broker-config run twice with an empty enrol-admin.password; Mosquitto with its files."""
    port = free_port()
    collector_yaml = write_district(tmp_path, port, "http://127.0.0.1:1", "x", [A, B])
    out = tmp_path / "broker"
    out.mkdir(mode=0o700)
    (out / ENROL_ADMIN_FILE).touch(mode=0o600)
    _broker_config(collector_yaml, out)
    first = (out / ENROL_ADMIN_FILE).read_text()
    _broker_config(collector_yaml, out)
    assert (out / ENROL_ADMIN_FILE).read_text() == first and len(first.strip()) >= 24
    assert stat.S_IMODE((out / ENROL_ADMIN_FILE).stat().st_mode) == 0o600
    assert _clients(out) == {"collector", A.agent, B.agent, ENROL_ADMIN}
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nlog_dest file {tmp_path}/mosquitto.log\nuser root\n"
        + (out / "broker.conf").read_text())
    proc = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 15, "mosquitto")
        assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
        yield Broker(tmp_path, port, collector_yaml, "x", "http://127.0.0.1:1")
    finally:
        proc.terminate()
        proc.wait(10)


def test_enrol_admin_makes_accounts_and_can_do_nothing_else(enrol_broker: Broker) -> None:
    """The enrolment service's account provisions a new agent (which then publishes its own
    data); it may not read or write any data topic; an agent may not use the control topic."""
    admin_password = (enrol_broker.dir / "broker" / ENROL_ADMIN_FILE).read_text().strip()
    newcomer = AgentIdentity(A.district, A.school, "a-pc101")
    BrokerAdmin("127.0.0.1", enrol_broker.port, ENROL_ADMIN, admin_password,
                topic_prefix=PREFIX).provision(newcomer, "newcomer-Secret-1")
    agent = connect(enrol_broker, newcomer.agent, newcomer.agent, "newcomer-Secret-1")
    admin = connect(enrol_broker, ENROL_ADMIN, "enrol-probe", admin_password)
    old = connect(enrol_broker, A.agent, A.agent)
    try:
        assert agent.connack == "ok" and admin.connack == "ok" and old.connack == "ok"
        # Accepted (no collector listens here: "No matching subscribers" is a success code).
        assert agent.publish(TOPICS.data(newcomer), b"{}") in ("Success",
                                                               "No matching subscribers")
        for topic in (f"{PREFIX}/#", TOPICS.data(A), f"$share/collectors/{PREFIX}/+/+/+/data"):
            assert admin.subscribe(topic)[0] >= REFUSED, topic
        assert admin.publish(TOPICS.data(A), b"{}") == "Not authorized"
        assert admin.publish(TOPICS.ack(A), b"{}") == "Not authorized"
        assert old.subscribe(f"{CONTROL}/response")[0] >= REFUSED
        assert old.publish(CONTROL, b'{"commands": []}') == "Not authorized"
    finally:
        for client in (agent, admin, old):
            client.close()
    # A wrong admin password makes nothing.
    with pytest.raises((EnrolError, OSError, ConnectionError)):
        BrokerAdmin("127.0.0.1", enrol_broker.port, ENROL_ADMIN, "wrong", topic_prefix=PREFIX,
                    timeout=2).provision(AgentIdentity(B.district, B.school, "b-pc1"), "x-1")


def test_broker_config_refuses_an_agent_named_enrol_admin(tmp_path: Path) -> None:
    """An inventory agent named like the enrolment account: exit 2, one line, nothing written."""
    rogue = AgentIdentity(A.district, A.school, ENROL_ADMIN)
    collector_yaml = write_district(tmp_path, 1883, "http://127.0.0.1:1", "x", [B, rogue])
    out = subprocess.run(schoolmon_cmd("broker-config", "-c", str(collector_yaml), "--out",
                                       str(tmp_path / "broker")),
                         capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 2 and "collides" in out.stderr and ENROL_ADMIN in out.stderr
    assert not (tmp_path / "broker").exists()
