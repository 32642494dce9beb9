"""The delivery path end to end with real Mosquitto, InfluxDB 1.x and VictoriaMetrics."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from agent.config import AgentConfig
from agent.runner import Agent
from agent.scheduler import ScheduledProbe
from collector.config import CollectorConfig
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Envelope, Sample, Topics, encode_envelope
from tests.conftest import (
    Services,
    influx_rows,
    schoolmon_cmd,
    start_collector_process,
    start_services,
    wait_until,
)

pytestmark = pytest.mark.integration

WHO = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")
# Yesterday at 00:00 UTC: inside the collector's window (write.max_sample_age).
T0 = (int(time.time()) // 86_400 - 1) * 86_400_000


class ScriptedProbe:
    """A probe returning known samples, so what lands can be compared value by value."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def collect(self) -> list[Sample]:
        """The scripted samples."""
        return self.samples


def scripted_samples(t0: int = T0) -> list[Sample]:
    """A mix of kinds, tags and field types."""
    return [
        Sample("iface", t0, {"iface": "eth0", "role": "wan"},
               {"rx_bps": 81234567.5, "tx_bps": 1234567.0, "link_mbps": 1000, "up": True}),
        Sample("iface", t0 + 10_000, {"iface": "eth0", "role": "wan"},
               {"rx_bps": 91234567.25, "tx_bps": 2234567.0, "link_mbps": 1000, "up": True}),
        Sample("iface", t0, {"iface": "wlan 0", "role": "wlan"},
               {"rx_bps": 10.0, "tx_bps": 20.0, "up": False}),
        Sample("host", t0, {}, {"uptime_s": 3600, "cpu_pct": 12.5, "mem_pct": 40.0,
                                "disk_pct": 71.25}),
        Sample("reach", t0, {"target": "district-hub", "target_role": "district",
                             "method": "tcp"},
               {"up": True, "rtt_ms": 3.5, "loss_pct": 0.0, "jitter_ms": 0.25}),
        Sample("av", t0, {"device": "proj-301", "classroom": "301", "device_type": "projector"},
               {"online": True, "power": "on", "lamp_hours": 1234}),
    ]


def agent_config(tmp: Path, port: int, prefix: str, **publish: Any) -> AgentConfig:
    """An agent config for the test broker."""
    return AgentConfig.model_validate({
        "agent": {"id": WHO.agent, "school": WHO.school, "district": WHO.district},
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix,
                 "session_expiry": "1h"},
        "spool": {"path": str(tmp / "spool.db"), "max_mb": 8},
        "publish": {"ack_timeout": "2s", **publish},
    })


def collector_config(port: int, prefix: str, storage: dict[str, Any],
                     client_id: str | None = None) -> CollectorConfig:
    """A collector config for the test broker."""
    # One client id per test: a persistent session left by another test's collector would
    # hand this one that test's un-acked messages.
    client_id = client_id or "c-" + prefix.split("/", maxsplit=1)[0]
    return CollectorConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix,
                 "username": None, "client_id": client_id, "session_expiry": "60s"},
        "storage": storage,
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s"},
    })


@pytest.fixture
def running_collector(request: pytest.FixtureRequest) -> Iterator[list[Collector]]:
    """Collectors started by a test, stopped at its end."""
    started: list[Collector] = []
    yield started
    for c in started:
        c.stop()


def start_collector(config: CollectorConfig, registry: list[Collector]) -> Collector:
    """Start a collector in this process and wait until it has subscribed."""
    collector = Collector(config, build_writer(config))
    collector.start()
    registry.append(collector)
    assert collector.connected.wait(10), "collector did not connect"

    return collector


def scripted_agent(tmp: Path, port: int, prefix: str, samples: list[Sample]) -> Agent:
    """An agent whose only probe returns ``samples``."""
    probe = ScheduledProbe("scripted", ScriptedProbe(samples), 3600.0, 10.0, 0.0)
    return Agent(agent_config(tmp, port, prefix), probes=[probe])


def spool_depth(path: Path) -> int:
    """Batches in a spool file, read with a separate connection."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM batch").fetchone()[0])


def assert_samples_in_influx(url: str, db: str, samples: list[Sample]) -> None:
    """Each sample is one point with the identity tags, its tags, fields and timestamp."""
    for s in samples:
        where = " AND ".join(
            [f"time = {s.ts_ms}ms"]
            + [f"\"{k}\" = '{v}'" for k, v in {**s.tags, "district": WHO.district,
                                              "school": WHO.school, "agent": WHO.agent}.items()])
        rows = influx_rows(url, db, f'SELECT * FROM "{s.kind}" WHERE {where}')
        assert len(rows) == 1, (s, rows)
        row = rows[0]
        assert row["time"] == s.ts_ms
        for key, value in s.fields.items():
            assert row[key] == value, (s.kind, key, row[key], value)


def test_agent_once_lands_every_sample_in_influxdb1(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path,
        running_collector: list[Collector]) -> None:
    """agent --once -> Mosquitto -> collector -> InfluxDB 1.x: exact points, spool empty."""
    start_collector(collector_config(services.mqtt_port, topic_prefix, {
        "kind": "influxdb1", "url": services.influx_url, "database": influx_db,
    }), running_collector)
    samples = scripted_samples()
    agent = scripted_agent(tmp_path, services.mqtt_port, topic_prefix, samples)

    assert agent.run_once(timeout=20) is True

    assert spool_depth(tmp_path / "spool.db") == 0
    assert_samples_in_influx(services.influx_url, influx_db, samples)
    health = influx_rows(services.influx_url, influx_db,
                         f"SELECT * FROM agent WHERE agent = '{WHO.agent}'")
    assert len(health) == 1 and health[0]["rss_mb"] > 5  # type: ignore[operator]


def test_cli_agent_once_with_real_probes(services: Services, influx_db: str, topic_prefix: str,
                                         tmp_path: Path) -> None:
    """`schoolmon collector run` + `schoolmon agent run --once` measuring this machine."""
    port = services.mqtt_port
    (tmp_path / "collector.yaml").write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": topic_prefix,
                 "username": None, "client_id": "cli-collector"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": influx_db},
    }))
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump({
        "agent": {"id": "cli-gw", "school": "cli-school", "district": "cli"},
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": topic_prefix},
        "spool": {"path": str(tmp_path / "spool.db")},
        "probes": [{"type": "iface", "roles": {"lo": "lan"}}, {"type": "host"}],
    }))
    collector = start_collector_process(tmp_path / "collector.yaml")
    try:
        before_ms = int(time.time() * 1000)
        result = subprocess.run(schoolmon_cmd("agent", "run", "--once", "--timeout", "20", "-c",
                                              str(tmp_path / "agent.yaml")),
                                capture_output=True, text=True, timeout=60, check=False)
        after_ms = int(time.time() * 1000)
        assert result.returncode == 0, result.stderr
    finally:
        collector.terminate()
        collector.wait(10)
    assert collector.returncode == 0
    assert spool_depth(tmp_path / "spool.db") == 0
    lo = influx_rows(services.influx_url, influx_db,
                     "SELECT * FROM iface WHERE iface = 'lo' AND agent = 'cli-gw'")
    assert len(lo) == 1 and lo[0]["role"] == "lan" and lo[0]["school"] == "cli-school"
    host = influx_rows(services.influx_url, influx_db, "SELECT * FROM host")
    assert len(host) == 1
    assert before_ms <= host[0]["time"] <= after_ms  # type: ignore[operator]
    assert host[0]["uptime_s"] > 0 and 0 <= host[0]["mem_pct"] <= 100  # type: ignore[operator]


def victoria_export(url: str, match: str) -> list[dict[str, Any]]:
    """Series from VictoriaMetrics' /api/v1/export (JSON lines)."""
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10).read()
    qs = urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(f"{url}/api/v1/export?{qs}", timeout=10) as resp:
        return [orjson.loads(line) for line in resp.read().splitlines() if line.strip()]


def test_influxdb2_path_against_victoriametrics(services: Services, topic_prefix: str,
                                                tmp_path: Path,
                                                running_collector: list[Collector]) -> None:
    """storage.kind influxdb2 (influxdb-client, /api/v2/write) into VictoriaMetrics."""
    start_collector(collector_config(services.mqtt_port, topic_prefix, {
        "kind": "influxdb2", "url": services.victoria_url, "org": "district",
        "bucket": "schoolmon",
    }), running_collector)
    district = "vm" + topic_prefix[1:9]
    who = AgentIdentity(district, "vm-school", "vm-gw")
    samples = scripted_samples(T0 + 5)
    cfg = agent_config(tmp_path, services.mqtt_port, topic_prefix).model_copy(
        update={"agent": AgentConfig.model_validate({"agent": {
            "id": who.agent, "school": who.school, "district": who.district}}).agent})
    agent = Agent(cfg, probes=[ScheduledProbe("s", ScriptedProbe(samples), 3600.0, 10.0, 0.0)])

    assert agent.run_once(timeout=20) is True

    def exported() -> list[dict[str, Any]]:
        return victoria_export(services.victoria_url, f'{{district="{district}"}}')

    wait_until(lambda: any(s["metric"]["__name__"] == "host_disk_pct" for s in exported()),
               30, "VictoriaMetrics to show the points")
    series = {(s["metric"]["__name__"], s["metric"].get("iface", "")): s for s in exported()}
    eth0 = series[("iface_rx_bps", "eth0")]
    assert eth0["values"] == [81234567.5, 91234567.25]
    assert eth0["timestamps"] == [T0 + 5, T0 + 10_005]
    assert eth0["metric"]["school"] == "vm-school" and eth0["metric"]["role"] == "wan"
    assert series[("host_disk_pct", "")]["values"] == [71.25]
    assert series[("reach_rtt_ms", "")]["metric"]["target"] == "district-hub"


def test_storage_down_keeps_batches_then_everything_lands_once(
        services: Services, topic_prefix: str, tmp_path: Path,
        running_collector: list[Collector]) -> None:
    """InfluxDB stopped: nothing acked, spool keeps batches; restarted: all lands, once."""
    private = start_services(tmp_path / "svc", "influxdb")
    try:
        start_collector(collector_config(services.mqtt_port, topic_prefix, {
            "kind": "influxdb1", "url": private.influx_url, "database": "schoolmon",
        }), running_collector)
        private.stop("influxdb")
        samples = scripted_samples()
        agent = scripted_agent(tmp_path, services.mqtt_port, topic_prefix, samples)
        stop = threading.Event()
        runner = threading.Thread(target=agent.run, args=(stop,))
        runner.start()
        try:
            spool = tmp_path / "spool.db"
            wait_until(lambda: agent.publisher.published_batches >= 2, 15, "batches published")
            # Several ack timeouts (2 s) pass with storage down: batches are resent, none acked.
            wait_until(lambda: agent.publisher.published_batches >= 6, 20, "resends")
            assert spool_depth(spool) >= 2
            assert agent.publisher.acked_batches == 0
            assert running_collector[0].accepted_messages == 0

            private.start("influxdb")
            wait_until(lambda: spool_depth(spool) == 0, 30, "the spool to drain")
        finally:
            stop.set()
            runner.join(10)
        assert_samples_in_influx(private.influx_url, "schoolmon", samples)
        total = influx_rows(private.influx_url, "schoolmon", "SELECT COUNT(rx_bps) FROM iface")
        assert total[0]["count"] == 3  # resent batches overwrote themselves: one point each
    finally:
        private.stop()


def publish_raw(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish messages straight to the broker, QoS 1, waiting for each PUBACK."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-publisher",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_bad_input_is_rejected_counted_and_valid_messages_land(
        services: Services, influx_db: str, topic_prefix: str,
        running_collector: list[Collector]) -> None:
    """Malformed messages never stop the collector; valid ones sent in between all land."""
    collector = start_collector(collector_config(services.mqtt_port, topic_prefix, {
        "kind": "influxdb1", "url": services.influx_url, "database": influx_db,
    }), running_collector)
    topics = Topics(topic_prefix)
    topic = topics.data(WHO)
    base = orjson.loads(encode_envelope(Envelope(WHO.district, WHO.school, WHO.agent, 1, T0,
                                                 scripted_samples()[:1])))

    def variant(**changes: Any) -> bytes:
        return orjson.dumps({**base, **changes})

    one = base["samples"][0]
    bad: dict[str, bytes] = {
        "json": b'{"v": 1, "district": ',
        "version": variant(v=2),
        "identity": variant(school="gz-th-999"),
        "nan": variant(samples=[{**one, "fields": {"rx_bps": 1}}]).replace(b"1}", b"NaN}"),
        "too_large": variant(samples=[one] * 10_000),
        "too_many_samples": variant(samples=[{**one, "ts_ms": T0 + i} for i in range(1001)]),
        "unknown_kind": variant(samples=[{**one, "kind": "toaster"}]),
        "bad_value": variant(samples=[{**one, "fields": {"rx_bps": [1, 2]}}]),
    }
    messages: list[tuple[str, bytes]] = []
    valid: list[Sample] = []
    for i, payload in enumerate(bad.values()):
        messages.append((topic, payload))
        sample = Sample("host", T0 + 1000 * i, {}, {"uptime_s": i, "cpu_pct": 1.5})
        valid.append(sample)
        messages.append((topic, encode_envelope(Envelope(WHO.district, WHO.school, WHO.agent,
                                                         100 + i, T0, [sample]))))
    publish_raw(services.mqtt_port, messages)

    wait_until(lambda: sum(collector.rejects.counts.values()) == len(bad), 20, "all rejects")
    wait_until(lambda: collector.accepted_messages == len(valid), 20, "all valid messages")
    assert collector.rejects.counts == {"json": 2, "version": 1, "identity": 1, "too_large": 1,
                                        "too_many_samples": 1, "unknown_kind": 1,
                                        "bad_value": 1}
    assert_samples_in_influx(services.influx_url, influx_db, valid)
    stored = influx_rows(services.influx_url, influx_db,
                         "SELECT COUNT(count) FROM schoolmon_reject GROUP BY cause")
    assert {r["cause"]: r["count"] for r in stored} == collector.rejects.counts


def test_agent_once_with_dead_broker_keeps_samples_and_exits_1(tmp_path: Path) -> None:
    """No broker at all: exit 1 after the timeout, one clear log line, samples kept on disk."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump({
        "agent": {"id": "dead-gw", "school": "s", "district": "d"},
        "mqtt": {"host": "127.0.0.1", "port": port},
        "spool": {"path": str(tmp_path / "spool.db")},
        "probes": [{"type": "host"}],
    }))
    result = subprocess.run(schoolmon_cmd("agent", "run", "--once", "--timeout", "3", "-c",
                                          str(tmp_path / "agent.yaml")),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "not acknowledged" in result.stderr and "Traceback" not in result.stderr
    assert spool_depth(tmp_path / "spool.db") == 2  # the host sample and the agent sample
