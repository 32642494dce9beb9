"""Batches a collector will never accept leave the agent's spool, counted; resends back off.

Real Mosquitto, InfluxDB and a ``schoolmon collector run`` process: the collector answers a
batch it refuses for good with an ack naming it in ``rejected``; the agent drops it, counts it
and delivers the batches behind it.  The resend backoff is checked with the agent's publisher on
an injected clock against the real broker, a small subscriber counting what reaches it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.probes.base import wall_clock_ms
from agent.publisher import Publisher
from agent.runner import Agent
from agent.scheduler import ScheduledProbe
from agent.spool import Spool
from common.wire import Sample, Topics, encode_samples
from tests.conftest import Services, influx_rows, start_collector_process, wait_until
from tests.integration.delivery_peers import mqtt_client
from tests.integration.test_faults import WHO, CountingProbe, agent_cfg, collector_yaml

pytestmark = pytest.mark.integration

TS = wall_clock_ms() - 3_600_000  # an hour ago: inside the collector's time window


def host(ts: int) -> Sample:
    """One valid host sample."""
    return Sample("host", ts, {}, {"uptime_s": ts % 1000})


def test_rejected_batches_are_dropped_and_delivery_goes_on(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Two poison batches between valid ones: 4 samples stored, 1 + 3 dropped and rejected."""
    cfg = agent_cfg(tmp_path, services.mqtt_port, topic_prefix)
    spool = Spool(cfg.spool.path, 10**9, 86400.0).open()
    spool.append(encode_samples([host(TS + 1), host(TS + 2)]), 2)
    huge = orjson.dumps([{"kind": "host", "ts_ms": TS + 3, "tags": {},
                          "fields": {"note": "x" * 300_000}}])  # over 256 KiB: too_large
    spool.append(huge, 1)
    bogus = orjson.dumps([{"kind": "nosuchkind", "ts_ms": TS + 4 + i, "tags": {},
                           "fields": {"v": 1}} for i in range(3)])
    spool.append(bogus, 3)
    spool.append(encode_samples([host(TS + 7), host(TS + 8)]), 2)
    spool.close()
    collector = start_collector_process(collector_yaml(
        tmp_path, services.mqtt_port, topic_prefix, services.influx_url, influx_db,
        client_id=f"poison-{topic_prefix[:8]}"))
    probe = CountingProbe(TS + 100)
    probe.paused.set()
    agent = Agent(cfg, probes=[ScheduledProbe("count", probe, 3600.0, 5.0, 0.0)])
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    try:
        with caplog.at_level(logging.ERROR, logger="agent.publisher"):
            thread.start()
            assert agent.publisher.connected.wait(10)  # the spool is open by then
            wait_until(lambda: agent.spool.stats().depth == 0, 30, "the spool to empty")
        stats = agent.spool.stats()
        assert (stats.dropped_total, stats.rejected_total) == (4, 4)
        assert agent.publisher.rejected_batches == 2
        lines = sorted(r.getMessage() for r in caplog.records if "rejected batch" in r.getMessage())
        assert len(lines) == 2
        assert lines[0].startswith("collector rejected batch 2 (1 samples) for good: too_large")
        assert lines[1].startswith("collector rejected batch 3 (3 samples) for good: ")
        def stored() -> list[int]:
            rows = influx_rows(services.influx_url, influx_db,
                               f"SELECT uptime_s FROM host WHERE agent = '{WHO.agent}'")
            return sorted(int(r["time"]) for r in rows)  # type: ignore[call-overload]
        wait_until(lambda: len(stored()) >= 4, 10, "the valid samples in InfluxDB")
        assert stored() == [TS + 1, TS + 2, TS + 7, TS + 8]
    finally:
        stop.set()
        thread.join(10)
        collector.terminate()
        collector.wait(10)


class Clock:
    """A settable wall clock in ms."""

    def __init__(self) -> None:
        self.now_ms = TS

    def __call__(self) -> int:
        return self.now_ms


def test_resends_of_one_batch_back_off(services: Services, topic_prefix: str,
                                       tmp_path: Path) -> None:
    """No collector: the same batch is resent after 10 s, then 20 s, then 40 s (cap 40 s)."""
    cfg = agent_cfg(tmp_path, services.mqtt_port, topic_prefix,
                    ack_timeout="10s", resend_max="40s")
    clock = Clock()
    spool = Spool(cfg.spool.path, 10**9, 86400.0, clock_ms=clock).open()
    spool.append(encode_samples([host(TS)]), 1)
    seen: list[int] = []
    watcher: Any = mqtt_client(services.mqtt_port, f"watch-{topic_prefix[:8]}")
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *_a: subscribed.set()
    watcher.on_message = lambda _c, _u, msg: seen.append(orjson.loads(msg.payload)["seq"])
    watcher.subscribe(Topics(topic_prefix).data(WHO), qos=1)
    assert subscribed.wait(10)
    pub = Publisher(cfg, spool, clock_ms=clock)
    pub.start()
    try:
        assert pub.connected.wait(10)
        sends_at = []
        for _ in range(10 * 60):  # ten minutes of pumps, one a second
            if pub.pump():
                sends_at.append((clock.now_ms - TS) // 1000)
            clock.now_ms += 1000
        # sent at 0; due again strictly after 10 s (at 11), then 20 s (31), 40 s (72), cap 40
        assert sends_at[:6] == [0, 11, 32, 73, 114, 155]
        assert len(sends_at) == 16  # without backoff: 55 sends of one batch in 10 minutes
        wait_until(lambda: len(seen) == len(sends_at), 10, "every send at the broker")
        assert set(seen) == {1}
    finally:
        pub.stop()
        watcher.disconnect()
        watcher.loop_stop()
        spool.close()
