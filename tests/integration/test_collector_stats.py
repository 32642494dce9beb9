"""The collector's own counters, stored as ``collector_stats`` points (collector_stats.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.runner import Agent
from agent.spool import Spool
from collector.config import CollectorConfig
from collector.subscriber import Collector, build_writer
from common.wire import Sample, encode_samples
from tests.conftest import Services, influx_rows, wait_until
from tests.integration.test_delivery import agent_config, spool_depth

pytestmark = pytest.mark.integration

BATCHES, SAMPLES_PER_BATCH = 12, 20


def test_a_running_collector_stores_its_counters(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path) -> None:
    """12 batches through a collector whose stats_interval is 200 ms: its latest point counts
    every message it accepted, nothing shed, storage not failing."""
    spool_path = tmp_path / "spool.db"
    spool = Spool(spool_path, 64 * 2**20, 86400.0).open()
    now_ms = int(time.time() * 1000) - 60_000
    for b in range(BATCHES):
        spool.append(encode_samples([
            Sample("host", now_ms + b * SAMPLES_PER_BATCH + i, {}, {"uptime_s": i})
            for i in range(SAMPLES_PER_BATCH)]), SAMPLES_PER_BATCH)
    spool.close()
    client_id = "stats-" + topic_prefix.split("/", maxsplit=1)[0]
    config = CollectorConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": topic_prefix,
                 "username": None, "client_id": client_id},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": influx_db},
        "write": {"flush_interval": "100ms", "stats_interval": "200ms"},
    })
    collector = Collector(config, build_writer(config))
    collector.start()
    agent = Agent(agent_config(tmp_path, services.mqtt_port, topic_prefix), probes=[])
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,))
    query = ("SELECT last(messages_accepted) AS accepted, last(messages_shed) AS shed, "
             "last(storage_failing) AS failing FROM collector_stats "
             f"WHERE \"collector\" = '{client_id}'")

    def latest() -> dict[str, object]:
        rows = influx_rows(services.influx_url, influx_db, query)
        return rows[0] if rows else {}
    try:
        assert collector.connected.wait(10)
        runner.start()
        wait_until(lambda: spool_depth(spool_path) == 0, 60, "every batch acked")
        # The agent's own batches (its `agent` points) come on top of the spooled ones.
        wait_until(lambda: latest().get("accepted") == collector.accepted_messages >= BATCHES,
                   30, "a collector_stats point counting every batch")
    finally:
        stop.set()
        if runner.is_alive():
            runner.join(10)
        collector.stop()
    assert latest()["shed"] == 0 and latest()["failing"] is False
    host = influx_rows(services.influx_url, influx_db, "SELECT COUNT(uptime_s) FROM host")
    assert host[0]["count"] == BATCHES * SAMPLES_PER_BATCH
    # Every host point went through the counted writes (with the agent's and stats points).
    assert collector.storage.stats.written >= BATCHES * SAMPLES_PER_BATCH
