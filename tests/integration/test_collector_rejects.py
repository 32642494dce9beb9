"""Batches the collector will never accept: named in the agent's ack, counted exactly."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from agent.runner import Agent
from agent.scheduler import ScheduledProbe
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Sample, Topics
from tests.conftest import Services, influx_rows, start_collector_process, wait_until
from tests.integration.delivery_peers import (
    AckListener,
    RawPublisher,
    host_envelope,
    write_collector_yaml,
)
from tests.integration.test_delivery import T0, WHO, agent_config, collector_config, spool_depth

pytestmark = pytest.mark.integration

OTHER = AgentIdentity(WHO.district, WHO.school, "someone-else")


class CountingProbe:
    """One ``host`` sample per run (uptime_s = run number) for ``limit`` runs, then none."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls = 0

    def collect(self) -> list[Sample]:
        """The next sample, while there are any."""
        if self.calls >= self.limit:
            return []
        self.calls += 1
        return [Sample("host", T0 + 1000 * self.calls, {}, {"uptime_s": self.calls})]


def test_never_accepted_batches_are_named_in_the_ack_and_delivery_goes_on(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path) -> None:
    """An oversized batch, a `v: 2` batch and one naming another agent, sent on a running
    agent's topic between its own batches: each is rejected to that agent by seq and cause,
    never to the identity a payload names; every one of the agent's samples is stored once."""
    config = collector_config(services.mqtt_port, topic_prefix, {
        "kind": "influxdb1", "url": services.influx_url, "database": influx_db})
    collector = Collector(config, build_writer(config))
    collector.start()
    acks = AckListener(services.mqtt_port, topic_prefix)
    raw = RawPublisher(services.mqtt_port, "raw-" + topic_prefix.split("/", maxsplit=1)[0])
    probe = CountingProbe(limit=12)
    agent = Agent(agent_config(tmp_path, services.mqtt_port, topic_prefix),
                  probes=[ScheduledProbe("count", probe, 0.25, 5.0, 0.0)])
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,))
    try:
        assert collector.connected.wait(10)
        runner.start()
        wait_until(lambda: acks.count_acked([(WHO.agent, s) for s in range(1, 4)]) >= 3, 20,
                   "the agent's first batches acked")
        data = Topics(topic_prefix).data(WHO)
        good = orjson.loads(host_envelope(WHO, 900_001, T0))
        oversized = orjson.dumps({**good, "samples": good["samples"] * 4000})
        assert len(oversized) > 256 * 1024
        raw.publish(data, oversized)
        raw.publish(data, orjson.dumps({**good, "v": 2, "seq": 900_002}))
        raw.publish(data, orjson.dumps({**good, "seq": 900_003, "agent": OTHER.agent}))
        wait_until(lambda: len(acks.rejected) == 3, 20, "the three rejects in acks")
        wait_until(lambda: probe.calls == probe.limit and spool_depth(tmp_path / "spool.db") == 0,
                   30, "the agent to deliver all its samples")
    finally:
        stop.set()
        if runner.is_alive():
            runner.join(10)
        raw.close()
        acks.close()
        collector.stop()

    assert acks.rejected == {(WHO.agent, 900_001): "too_large", (WHO.agent, 900_002): "version",
                             (WHO.agent, 900_003): "identity"}
    assert OTHER.agent not in acks.acks_by_agent  # never an ack to a payload's identity
    assert collector.rejects.counts == {"too_large": 1, "version": 1, "identity": 1}
    rows = influx_rows(services.influx_url, influx_db,
                       f"SELECT uptime_s FROM host WHERE agent = '{WHO.agent}'")
    assert sorted(r["uptime_s"] for r in rows) == list(range(1, 13))  # type: ignore[type-var]
    stored = influx_rows(services.influx_url, influx_db,
                         "SELECT SUM(count) FROM schoolmon_reject")
    assert stored[0]["sum"] == 3


def test_two_collectors_store_every_reject_exactly(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path) -> None:
    """1,000 malformed messages shared by two collector processes: exactly 1,000 counted."""
    tag = topic_prefix.split("/", maxsplit=1)[0]
    procs = [start_collector_process(write_collector_yaml(
        tmp_path / f"c{i}.yaml", services.mqtt_port, topic_prefix,
        influx_url=services.influx_url, db=influx_db, client_id=f"{tag}-c{i}")) for i in (1, 2)]
    sent = 1000
    raw = RawPublisher(services.mqtt_port, "junk-" + tag)
    try:
        data = Topics(topic_prefix).data(WHO)
        infos = [raw.client.publish(data, b"junk %d" % i, qos=1) for i in range(sent)]
        for info in infos:
            info.wait_for_publish(30)

        def stored() -> float:
            rows = influx_rows(services.influx_url, influx_db,
                               "SELECT SUM(count) FROM schoolmon_reject")
            return float(rows[0]["sum"]) if rows else 0.0  # type: ignore[arg-type]

        wait_until(lambda: stored() >= sent, 30, "every reject stored")
    finally:
        raw.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    assert all(p.returncode == 0 for p in procs)
    assert stored() == sent  # exact, also after both collectors flushed and stopped
    times: dict[str, list[object]] = {}
    for row in influx_rows(services.influx_url, influx_db,
                           "SELECT count FROM schoolmon_reject GROUP BY collector"):
        times.setdefault(str(row["collector"]), []).append(row["time"])
    assert set(times) == {f"{tag}-c1", f"{tag}-c2"}  # both took a share
    shared_ms = set(times[f"{tag}-c1"]) & set(times[f"{tag}-c2"])
    # Without the collector tag these would have been one point each (what lost 1,046 of 2,700).
    print(f"rejects per collector: { {c: len(t) for c, t in times.items()} }, "
          f"timestamps in both: {len(shared_ms)}")
    assert sum(len(t) for t in times.values()) == sent

