"""Done means: district shards and roles are real settings. Two ``role: rules`` collectors each
owning half of the districts write the same compliance points and send the same alert mails as
one owning all; neither stores a sample nor acks an agent (the ``role: ingest`` collector does);
a ``districts:`` pattern naming no district is one config error line, exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from common.wire import AgentIdentity, Envelope, Sample, Topics, encode_envelope
from tests.conftest import Services, influx_query, influx_rows, schoolmon_cmd, wait_until
from tests.integration.alert_scenario import PASSWORD, alerts_yaml
from tests.peers.smtp_server import SmtpServer, start_smtp

pytestmark = pytest.mark.integration

MINUTE = 60_000
ALL_DAY = {"timezone": "Asia/Shanghai", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
           "hours": ["00:00-24:00"]}
DISTRICTS = ["d1", "d2", "d3", "d4"]
GATEWAYS = [AgentIdentity(d, f"{d}-s{i}", f"{d}-s{i}-gw") for d in DISTRICTS for i in (1, 2)]
OFFLINE = {GATEWAYS[0], GATEWAYS[5]}  # one school in each half: a FIRING mail each
# Schools 0, 3 and 6 report the internet unreachable (d1-s1's alert goes in its offline mail).
EXPECTED_MAILS = sorted(
    [f"[schoolmon FIRING] {w.school} ({w.school}): Agent offline" for w in OFFLINE]
    + [f"[schoolmon FIRING] {GATEWAYS[i].school} ({GATEWAYS[i].school}): School internet down"
       for i in (3, 6)])


def inventory() -> dict[str, Any]:
    """Four districts of two schools, a projector room each, a gateway each."""
    return {
        "districts": [{"id": d, "name": d, "region": "central"} for d in DISTRICTS],
        "schools": [{"id": g.school, "name": g.school, "district": g.district,
                     "category": "urban" if g.school.endswith("1") else "rural", "classes": 6,
                     "timetable": ALL_DAY, "classrooms": [{"id": "r1"}],
                     "devices": [{"id": f"{g.school}-p", "classroom": "r1", "type": "projector"}]}
                    for g in GATEWAYS],
        "agents": [{"id": g.agent, "school": g.school} for g in GATEWAYS],
    }


def samples(i: int, t0: int) -> list[Sample]:
    """A speed test, a reach round and projector checks: school i meets some targets."""
    down = [3.0, 12.0, 60.0, 150.0][i % 4] * (1 + i // 4)
    out = [Sample("speedtest", t0 - 30 * MINUTE, {"server": "http://hub:8080"},
                  {"down_mbps": down, "up_mbps": down / 2}),
           Sample("reach", t0 - 2 * MINUTE, {"target": "baidu", "target_role": "internet",
                                              "method": "tcp"}, {"up": i % 3 != 0})]
    out += [Sample("av", t0 - (10 - k) * MINUTE, {"device": f"{GATEWAYS[i].school}-p",
                                                 "classroom": "r1", "device_type": "projector"},
                   {"online": k % (i % 3 + 1) == 0}) for k in range(10)]
    return out


def write_config(tmp: Path, name: str, services: Services, db: str, prefix: str, *,
                 role: str, districts: list[str] | None = None,
                 smtp: SmtpServer | None = None) -> Path:
    """A collector.yaml beside the shared inventory (rules every second, no restore)."""
    config: dict[str, Any] = {
        "role": role,
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": prefix,
                 "username": None, "client_id": f"{name}-{prefix[:11]}"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": db},
        "write": {"flush_interval": "100ms"},
        "inventory": "inventory.yaml",
    }
    if districts is not None:
        config["districts"] = districts
    if smtp is not None:
        config["policies"] = ["cn-moe-2017", "cn-moe-13fyp"]
        config["rules"] = {"interval": "1s", "restore": False, "stale_after": "15m"}
        config["alerts"] = alerts_yaml(tmp / f"{name}.db", smtp)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`schoolmon collector run`, returned once it has subscribed."""
    log = config.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(schoolmon_cmd("collector", "run", "-c", str(config), *extra),
                                stderr=out, env={**os.environ, "SMTP_PW": PASSWORD})
    wait_until(lambda: b"subscribed" in log.read_bytes() or proc.poll() is not None, 30,
               f"{config.stem} to subscribe")
    assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
    return proc


class Broker:
    """A test client: publishes (QoS 1, waiting for PUBACK) and counts acks per agent."""

    def __init__(self, services: Services, prefix: str) -> None:
        self.topics = Topics(prefix)
        self.acks: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"shards-{prefix[:9]}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", services.mqtt_port)
        self.client.loop_start()
        self.client.subscribe(f"{self.topics.prefix}/+/+/+/ack", qos=1)
        assert subscribed.wait(10), "no SUBACK for the ack monitor"

    def _on_message(self, _c: Any, _u: object, msg: Any) -> None:
        with self._lock:
            self.acks[msg.topic.split("/")[-2]] += 1

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self) -> None:
        for who in GATEWAYS:  # the broker keeps retained statuses: leave none behind
            self.publish(self.topics.status(who), b"", retain=True)
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def smtps(tmp_path: Path) -> Iterator[tuple[SmtpServer, SmtpServer]]:
    """One mail server for the two shards, one for the whole."""
    servers = []
    for name in ("smtp-shards", "smtp-whole"):
        (tmp_path / name).mkdir()
        servers.append(start_smtp(tmp_path / name, PASSWORD))
    yield servers[0], servers[1]
    for server in servers:
        server.stop()


def compliance(services: Services, db: str) -> dict[tuple[str, ...], dict[str, object]]:
    """Every compliance point, keyed by its tags."""
    rows = influx_rows(services.influx_url, db, "SELECT * FROM compliance GROUP BY *")
    return {tuple(str(r.get(t) or "") for t in ("policy", "rule", "scope", "district", "school",
                                                "classroom")): r for r in rows}


def complete(services: Services, *dbs: str) -> bool:
    """Every school's access figure is in (all samples were observed before a pass)."""
    rows = {k: r for db in dbs for k, r in compliance(services, db).items()}
    access = [r for k, r in rows.items() if k[1] == "access_10m" and k[2] == "school"]
    return len(access) == len(GATEWAYS) and all(r.get("value") is not None for r in access)


def mails(server: SmtpServer) -> list[tuple[str, str]]:
    """(subject, recipient) of each mail, sorted."""
    return sorted((str(m.message["subject"]), str(m.message["to"])) for m in server.messages)


def test_two_half_shards_equal_one_whole(services: Services, influx_db: str, topic_prefix: str,
                                         tmp_path: Path,
                                         smtps: tuple[SmtpServer, SmtpServer]) -> None:
    """Ingest stores and acks once; rules halves and whole: same compliance, same mails."""
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(inventory()), encoding="utf-8")
    dbs = {name: f"{influx_db}_{name.replace('-', '_')}" for name in ("half-a", "half-b", "whole")}
    for db in dbs.values():
        influx_query(services.influx_url, "", f'CREATE DATABASE "{db}"')
    smtp_shards, smtp_whole = smtps
    t0 = int(time.time() * 1000)
    at = str(t0 + MINUTE)  # every pass of every collector at one instant: comparable points
    broker = Broker(services, topic_prefix)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for who in GATEWAYS:  # retained, as each agent's connection (or will) leaves it
            broker.publish(broker.topics.status(who),
                           b"offline" if who in OFFLINE else b"online", retain=True)
        procs.append(start(write_config(tmp_path, "ingest", services, influx_db, topic_prefix,
                                        role="ingest", districts=["d*"])))
        for name, districts, smtp in (("half-a", ["d1", "d2"], smtp_shards),
                                      ("half-b", ["d[34]"], smtp_shards),
                                      ("whole", None, smtp_whole)):
            procs.append(start(write_config(tmp_path, name, services, dbs[name], topic_prefix,
                                            role="rules", districts=districts, smtp=smtp),
                               "--evaluate-at", at))
        for i, who in enumerate(GATEWAYS):
            broker.publish(broker.topics.data(who), encode_envelope(Envelope(
                who.district, who.school, who.agent, 1, t0, samples(i, t0))))
        wait_until(lambda: complete(services, dbs["half-a"], dbs["half-b"])
                   and complete(services, dbs["whole"]),
                   60, "a pass over every school's samples in both set-ups")
        wait_until(lambda: len(smtp_shards.messages) >= len(EXPECTED_MAILS)
                   and len(smtp_whole.messages) >= len(EXPECTED_MAILS),
                   60, "the FIRING mails of both set-ups")
        wait_until(lambda: sum(broker.acks.values()) >= len(GATEWAYS), 20, "the agents' acks")
        stored = influx_rows(services.influx_url, influx_db, "SELECT count(*) FROM av")
        half_a, half_b = compliance(services, dbs["half-a"]), compliance(services, dbs["half-b"])
        whole = compliance(services, dbs["whole"])
        samples_in_rules_dbs = [influx_query(services.influx_url, db, "SELECT * FROM av")
                                for db in dbs.values()]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        broker.close()
        for db in dbs.values():
            influx_query(services.influx_url, "", f'DROP DATABASE "{db}"')

    # Each half wrote points of its own districts only, and together what the whole wrote.
    assert {k[3] for k in half_a} == {"d1", "d2"} and {k[3] for k in half_b} == {"d3", "d4"}
    halves = {**half_a, **half_b}
    shares = {k: (r["value"], r["met"], r["schools"]) for k, r in whole.items()
              if k[2] == "district_share"}
    assert {k[3] for k in shares} == set(DISTRICTS)
    assert {k: (r["value"], r["met"], r["schools"]) for k, r in halves.items()
            if k[2] == "district_share"} == shares
    assert halves == whole  # every school, classroom and district point, every field
    assert mails(smtp_shards) == mails(smtp_whole)
    assert [s for s, _ in mails(smtp_whole)] == EXPECTED_MAILS
    # Only the ingest collector stored the samples and acked them: once per batch.
    assert stored[0]["count_online"] == 10 * len(GATEWAYS)
    assert samples_in_rules_dbs == [[], [], []]
    # A half hears only its own districts' data (no share group: it misses none of it).
    log = (tmp_path / "half-b.log").read_text()
    assert f"subscribed to {topic_prefix}/d3/+/+/data, {topic_prefix}/d4/+/+/data\n" in log
    assert broker.acks == Counter({who.agent: 1 for who in GATEWAYS})


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_district_pattern_matching_nothing_is_one_line(tmp_path: Path, command: str) -> None:
    """A typo in districts: is named, not a silently empty shard."""
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(inventory()), encoding="utf-8")
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump({
        "role": "rules", "districts": ["d1", "gz-*"], "inventory": "inventory.yaml",
        "policies": ["cn-moe-2017"], "mqtt": {"host": "127.0.0.1", "port": 1},
        "storage": {"kind": "influxdb1", "url": "http://127.0.0.1:1"}}), encoding="utf-8")
    args = ["check-config", str(path)] if command == "check-config" else [
        "collector", "run", "-c", str(path)]
    done = subprocess.run(schoolmon_cmd(*args), check=False, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{path}: districts.1: 'gz-*' matches no district of the inventory"]
