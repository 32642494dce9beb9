"""Storage slower than the agents' ack_timeout: bounded memory, every batch written once."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runner import Agent
from agent.spool import Spool
from collector.config import CollectorConfig
from collector.subscriber import Collector, build_writer
from common.wire import MAX_PAYLOAD_BYTES, Sample, encode_samples
from tests.conftest import ROOT, Services, influx_rows, wait_until
from tests.integration.test_delivery import T0, agent_config, spool_depth
from tests.peers.delay_proxy import written_lines

# Long fault scenarios: `make test-faults` (README), run by CI beside `make test`.
pytestmark = [pytest.mark.integration, pytest.mark.faults]

BATCHES = 10
SAMPLES_PER_BATCH = 500  # ~40 KB a batch: the 256 KiB queue holds six
QUEUE_BYTES = 256 * 1024


@pytest.fixture
def slow_influx(services: Services, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """InfluxDB behind tests/peers/delay_proxy.py: requests at once, answers after 5-20 s.

    Seed 74 draws 6.1, 8.8, 7.1, 5.8 ... s for the answers (the test's time is their sum).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    upstream = services.influx_url.removeprefix("http://")
    record = tmp_path / "through-proxy"
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tests.peers.delay_proxy", "--listen", f"127.0.0.1:{port}",
         "--to", upstream, "--up-delay", "0", "--down-delay", "5-20", "--seed", "74",
         "--record", str(record), "--stats", str(tmp_path / "proxy.json")],
        cwd=ROOT, stdout=subprocess.PIPE)
    assert proxy.stdout is not None and proxy.stdout.readline().strip() == b"ready"
    yield f"http://127.0.0.1:{port}", record
    proxy.terminate()
    proxy.wait(10)


def test_slow_storage_keeps_memory_bounded_and_writes_each_batch_once(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path,
        slow_influx: tuple[str, Path]) -> None:
    """Writes take 5-20 s, the agent resends after 1 s: the queue's bytes never pass
    write.queue_bytes, resends are recognised (not written again), everything is stored."""
    url, record = slow_influx
    spool_path = tmp_path / "spool.db"
    spool = Spool(spool_path, 64 * 2**20, 86400.0).open()
    for b in range(BATCHES):
        spool.append(encode_samples([
            Sample("host", T0 + 1000 * (b * SAMPLES_PER_BATCH + i), {},
                   {"uptime_s": b * SAMPLES_PER_BATCH + i, "cpu_pct": 12.5, "mem_pct": 40.0})
            for i in range(SAMPLES_PER_BATCH)]), SAMPLES_PER_BATCH)
    spool.close()
    config = CollectorConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": topic_prefix,
                 "username": None, "client_id": "slow-" + topic_prefix.split("/", maxsplit=1)[0]},
        "storage": {"kind": "influxdb1", "url": url, "database": influx_db, "timeout": "60s"},
        # A write gathers what arrives within 1 s: the queue's room, not the first message.
        # No collector_stats points: the lines through the proxy are counted exactly.
        "write": {"flush_interval": "1s", "queue_bytes": QUEUE_BYTES, "stats_interval": "0s"},
    })
    collector = Collector(config, build_writer(config))
    collector.start()
    agent = Agent(agent_config(tmp_path, services.mqtt_port, topic_prefix, ack_timeout="1s"),
                  probes=[])
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,))
    try:
        assert collector.connected.wait(10)
        runner.start()
        wait_until(lambda: spool_depth(spool_path) == 0, 150, "every batch acked")
    finally:
        stop.set()
        if runner.is_alive():
            runner.join(10)
        collector.stop()
    stats = collector.queue.stats
    stored = influx_rows(services.influx_url, influx_db, "SELECT COUNT(uptime_s) FROM host")
    agent_points = influx_rows(services.influx_url, influx_db, "SELECT COUNT(rss_mb) FROM agent")
    # The writer's late-arrival journal (collector/late.py): T0 is yesterday, so every write
    # of these batches carries one rules_late point too.
    late_points = influx_rows(services.influx_url, influx_db,
                              "SELECT COUNT(min_ts_ms) FROM rules_late")
    distinct = sum(int(str(rows[0]["count"])) for rows in (stored, agent_points, late_points)
                   if rows)
    through_proxy = written_lines(record)
    print(f"published {agent.publisher.published_batches} for {BATCHES} batches; resends "
          f"recognised: {stats.joined} queued/being written, {stats.stored_resends} after the "
          f"store; {stats.shed} left to the agent's resend; peak {stats.peak_bytes} bytes of "
          f"{QUEUE_BYTES} (+ {stats.peak_probation} on probation); lines through the proxy "
          f"{through_proxy} for {distinct} samples")
    assert stored[0]["count"] == BATCHES * SAMPLES_PER_BATCH
    assert agent.publisher.published_batches > BATCHES  # the agent did resend
    assert stats.joined + stats.stored_resends > 0  # ... and the resends were recognised
    assert QUEUE_BYTES / 2 < stats.peak_bytes <= QUEUE_BYTES  # the bound was reached, not passed
    # Resends that found no room were checked on probation: at most one payload more, all let
    # go or joined by the end.
    assert stats.peak_probation <= MAX_PAYLOAD_BYTES and stats.probation_bytes == 0
    assert collector.storage.stats.retries == 0  # a retried write would count twice below
    assert through_proxy == distinct  # no point written twice
