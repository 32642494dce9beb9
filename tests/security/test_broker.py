"""A compromised classroom PC against the broker: it subscribes to its own ack topic and nothing
else (refused at SUBSCRIBE, shared subscriptions included), cannot take another session's
client id, cannot push oversize messages, and broker-config refuses colliding accounts."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from collector.brokerconfig import broker_settings
from collector.config import load_collector_config
from collector.subscriber import Collector, build_writer
from common.wire import MAX_PAYLOAD_BYTES, Envelope, Sample, encode_envelope
from tests.conftest import ROOT, influx_rows, schoolmon_cmd, wait_until
from tests.security.conftest import (
    COLLECTOR_ID,
    PREFIX,
    TOPICS,
    A,
    B,
    Broker,
    connect,
    write_district,
)

pytestmark = pytest.mark.integration
REFUSED = 0x80  # SUBACK reason codes from here on are failures


def test_agent_subscribes_to_its_own_ack_and_nothing_else(broker: Broker) -> None:
    """Own ack granted; the collectors' share group, a wildcard, another ack: refused; acks
    and other schools' topics cannot be published to."""
    a = connect(broker, A.agent, A.agent)
    try:
        assert a.connack == "ok"
        assert a.subscribe(TOPICS.ack(A)) == [1]
        for topic in (f"$share/collectors/{PREFIX}/+/+/+/data", f"$share/x/{TOPICS.ack(A)}",
                      f"{PREFIX}/#", "#", TOPICS.ack(B), TOPICS.data(B), f"{PREFIX}/+/+/+/ack"):
            assert a.subscribe(topic)[0] >= REFUSED, topic
        # Nor may it forge acks (another agent would drop unstored batches) or publish as B.
        for topic in (TOPICS.ack(B), TOPICS.ack(A), TOPICS.data(B), TOPICS.status(B)):
            assert a.publish(topic, b'{"v":1,"acked":[[1,999999]]}') == "Not authorized", topic
    finally:
        a.close()


def test_no_agent_takes_a_share_of_another_schools_data(broker: Broker) -> None:
    """A tries four share-group sessions; every one of B's 20 envelopes reaches the collector."""
    config = load_collector_config(broker.collector_yaml)
    collector = Collector(config, build_writer(config))
    collector.start()
    thieves = []
    try:
        assert collector.connected.wait(10)
        # The issue's attack: sessions in the collectors' share group with a long expiry.
        # A's account is bound to its client id, so it can hold one session at a time.
        thief = connect(broker, A.agent, A.agent)
        thieves.append(thief)
        assert thief.subscribe(f"$share/collectors/{PREFIX}/+/+/+/data")[0] >= REFUSED
        b = connect(broker, B.agent, B.agent)
        thieves.append(b)
        ts = int(time.time() * 1000)
        for seq in range(1, 21):
            env = Envelope(B.district, B.school, B.agent, seq, ts,
                           [Sample("host", ts + seq, {}, {"uptime_s": seq})])
            assert b.publish(TOPICS.data(B), encode_envelope(env)) == "Success"
        wait_until(lambda: collector.accepted_messages >= 20, 15, "B's 20 envelopes")
        assert thief.messages == []
        rows = influx_rows(config.storage.url, broker.database,
                           "SELECT uptime_s FROM host WHERE agent = 'b-gw'")
        assert len(rows) == 20
    finally:
        for c in thieves:
            c.close()
        collector.stop()


def test_client_ids_are_bound_to_their_accounts(broker: Broker) -> None:
    """A cannot connect as B's or the collector's client id; their sessions stay up."""
    b = connect(broker, B.agent, B.agent)
    collector = connect(broker, "collector", COLLECTOR_ID)
    try:
        assert b.connack == "ok" and collector.connack == "ok"
        for stolen in (B.agent, COLLECTOR_ID):
            intruder = connect(broker, A.agent, stolen)
            assert intruder.connack == "Not authorized", stolen
            intruder.close()
        # Still connected: a publish round trip on each.
        delivered = ("Success", "No matching subscribers")
        assert b.publish(TOPICS.status(B), b"online") in delivered
        assert collector.publish(TOPICS.ack(B), b'{"v":1,"acked":[]}') in delivered
        assert b.disconnects == 0 and collector.disconnects == 0
    finally:
        b.close()
        collector.close()


def test_oversize_messages_never_reach_the_collector(broker: Broker) -> None:
    """A message over the wire's payload limit disconnects its sender and is never delivered;
    the small message sent after reconnecting is the only one the collector gets."""
    collector = connect(broker, "collector", COLLECTOR_ID + "-size")
    a = connect(broker, A.agent, A.agent)
    try:
        assert collector.subscribe(f"$share/collectors/{PREFIX}/+/+/+/data") == [1]
        for size in (MAX_PAYLOAD_BYTES + 1, 30 * 2**20):
            assert a.publish(TOPICS.data(A), b"x" * size) == "disconnected"
            a.close()
            a = connect(broker, A.agent, A.agent)
        assert a.publish(TOPICS.data(A), b"small") == "Success"
        collector.wait(lambda: collector.messages != [])
        assert [p for _t, p in collector.messages] == [b"small"]
    finally:
        a.close()
        collector.close()


@pytest.mark.parametrize("agent_id", ["collector", COLLECTOR_ID, "schoolmon-collector-hub2"])
def test_broker_config_refuses_an_agent_named_like_a_service(tmp_path: Path,
                                                              agent_id: str) -> None:
    """Exit 2 with one line naming the agent; nothing written."""
    rogue = A.__class__(A.district, A.school, agent_id)
    collector_yaml = write_district(tmp_path, 1883, "http://127.0.0.1:1", "x", [B, rogue])
    out = subprocess.run(schoolmon_cmd("broker-config", "-c", str(collector_yaml), "--out",
                                       str(tmp_path / "broker")),
                         capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1 and agent_id in out.stderr
    assert "collides" in out.stderr and not (tmp_path / "broker").exists()


def test_one_broker_policy_for_the_command_ansible_and_the_example() -> None:
    """configs/mosquitto.conf repeats broker-config's policy; the role's template sets none."""
    example = (ROOT / "configs/mosquitto.conf").read_text()
    block = example.split("# --- policy")[1].split("# --- end of policy")[0]
    lines = [tuple(line.split(" ", 1)) for line in block.splitlines()[1:] if line.strip()]
    assert lines == broker_settings(Path("/etc/mosquitto/schoolmon"))
    keys = {k for k, _v in lines}
    template = (ROOT / "ansible/roles/mosquitto/templates/schoolmon.conf.j2").read_text()
    assert not keys & {m.group(1) for m in re.finditer(r"^(\w+) ", template, re.M)}
    tasks = yaml.safe_load((ROOT / "ansible/roles/mosquitto/tasks/main.yml").read_text())
    installs = [t for t in tasks if t.get("ansible.builtin.copy", {}).get("dest", "").endswith(
        "conf.d/schoolmon-broker.conf")]
    assert installs and installs[0]["ansible.builtin.copy"]["src"].endswith("/broker.conf")


def test_collectors_may_shard_and_hold_a_lease_agents_may_not(broker: Broker) -> None:
    """The collector account may subscribe per district (shared or not) and use the standby
    lease topics; an agent is refused all of them."""
    c = connect(broker, "collector", "shard-collector-1")
    a = connect(broker, A.agent, A.agent)
    try:
        assert c.connack == "ok" and a.connack == "ok"
        lease = f"{PREFIX}/_collector/lease/all"
        for topic in (f"$share/collectors/{PREFIX}/{A.district}/+/+/data",
                      f"{PREFIX}/{A.district}/+/+/data", lease,
                      f"{PREFIX}/_collector/alerts/all"):
            assert c.subscribe(topic)[0] < REFUSED, topic
            assert a.subscribe(topic)[0] >= REFUSED, topic
        assert c.publish(lease, b"shard-collector-1") == "Success"
        assert a.publish(lease, b"attacker") == "Not authorized"
        c.wait(lambda: any(t == lease for t, _ in c.messages))
    finally:
        c.close()
        a.close()
