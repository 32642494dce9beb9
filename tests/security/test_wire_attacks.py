"""A compromised agent against the collector and InfluxDB: wrong field types, values out of
range and future timestamps are rejected before any write, one rejection per batch, with
rate-limited logs; another school's data keeps landing."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import orjson
import pytest

from collector.config import load_collector_config
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Envelope, Sample, encode_envelope, wrap_envelope
from tests.conftest import influx_query, influx_rows, wait_until
from tests.security.conftest import TOPICS, A, B, Broker, Client, connect

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def collector(broker: Broker) -> Iterator[Collector]:
    """One in-process collector on the confined broker."""
    config = load_collector_config(broker.collector_yaml)
    running = Collector(config, build_writer(config))
    running.start()
    assert running.connected.wait(10)
    yield running
    running.stop()


class Agent:
    """Publishes raw envelopes (whatever the encoder would refuse) with an agent's account."""

    def __init__(self, broker: Broker, who: AgentIdentity) -> None:
        self.who = who
        self.client: Client = connect(broker, who.agent, who.agent)
        assert self.client.subscribe(TOPICS.ack(who)) == [1]
        self.seq = int(time.time() * 1000)  # above any seq of an earlier run

    def send(self, samples: list[dict[str, object]]) -> int:
        """One batch; its seq."""
        self.seq += 1
        payload = wrap_envelope(self.who, self.seq, int(time.time() * 1000),
                                orjson.dumps(samples))
        assert self.client.publish(TOPICS.data(self.who), payload) == "Success"
        return self.seq

    def close(self) -> None:
        """Disconnect."""
        self.client.close()


def now_ms() -> int:
    """Wall clock in ms."""
    return int(time.time() * 1000)


def rejects(collector: Collector, cause: str) -> int:
    """Rejections counted with this cause."""
    return collector.rejects.counts.get(cause, 0)


def test_a_string_rx_bps_is_refused_and_other_schools_numbers_land(
        broker: Broker, collector: Collector) -> None:
    """The attack: iface.rx_bps as a string first, in a new shard a week ahead.  Refused (as a
    type and as a future time); B's numeric rx_bps lands and the field stays a float."""
    a = Agent(broker, A)
    try:
        before = rejects(collector, "bad_value")
        ahead = now_ms() + 7 * 86_400_000
        a.send([{"kind": "iface", "ts_ms": ahead, "tags": {"iface": "eth0"},
                 "fields": {"rx_bps": "poison"}}])
        wait_until(lambda: rejects(collector, "bad_value") == before + 1, 10, "type reject")
        ts = now_ms()
        env = Envelope(B.district, B.school, B.agent, ts, ts,
                       [Sample("iface", ts, {"iface": "eth0"}, {"rx_bps": 1e6})])
        b = connect(broker, B.agent, B.agent)
        assert b.publish(TOPICS.data(B), encode_envelope(env)) == "Success"
        b.close()
        wait_until(lambda: influx_rows(broker.collector_url, broker.database,
                                       "SELECT rx_bps FROM iface WHERE agent = 'b-gw'") != [],
                   10, "B's iface point")
        keys = influx_query(broker.collector_url, broker.database, "SHOW FIELD KEYS FROM iface")
        assert ["rx_bps", "float"] in keys[0]["values"]  # type: ignore[operator]
        assert influx_rows(broker.collector_url, broker.database,
                           "SELECT * FROM iface WHERE agent = 'a-gw'") == []
    finally:
        a.close()


@pytest.mark.parametrize(("cause", "sample"), [
    ("future", {"kind": "reach", "ts_ms": 4_000_000_000_000, "tags": {"target": "internet"},
                "fields": {"up": True}}),
    ("future", {"kind": "reach", "ts_ms": "NOW+3600000", "tags": {"target": "internet"},
                "fields": {"up": True}}),
    ("out_of_range", {"kind": "reach", "ts_ms": "NOW", "tags": {"target": "internet"},
                      "fields": {"up": True, "loss_pct": 1e9}}),
    ("out_of_range", {"kind": "iface", "ts_ms": "NOW", "tags": {"iface": "eth0"},
                      "fields": {"rx_bps": -5.0}}),
])
def test_future_and_out_of_range_samples_are_rejected_with_their_cause(
        broker: Broker, collector: Collector, cause: str, sample: dict[str, object]) -> None:
    """A reach 'internet up' dated ahead (it would silence the internet-down alert for good),
    a loss of 1e9 %, a negative rate: each batch one reject with its cause, nothing stored."""
    a = Agent(broker, A)
    try:
        ts = sample["ts_ms"]
        if isinstance(ts, str):
            sample = {**sample, "ts_ms": now_ms() + int(ts[4:] or 0)}
        before = rejects(collector, cause)
        a.send([sample])
        wait_until(lambda: rejects(collector, cause) == before + 1, 10, f"{cause} reject")
        measurement = str(sample["kind"])
        assert influx_rows(broker.collector_url, broker.database,
                           f"SELECT * FROM {measurement} WHERE agent = 'a-gw'") == []
    finally:
        a.close()


def test_a_batch_of_bad_points_costs_one_rejection_and_no_write(
        broker: Broker, collector: Collector, caplog: pytest.LogCaptureFixture) -> None:
    """Five batches of 1,000 type-conflicting samples: five rejections, no point written,
    at most one log line for the cause."""
    caplog.set_level(logging.WARNING, logger="collector.validate")
    a = Agent(broker, A)
    try:
        before = rejects(collector, "bad_value")
        written = collector.storage.stats.written
        ts = now_ms()
        for _ in range(5):
            a.send([{"kind": "iface", "ts_ms": ts + i, "tags": {"iface": f"e{i}"},
                     "fields": {"rx_bps": "x", "up": 1}} for i in range(1000)])
        wait_until(lambda: rejects(collector, "bad_value") == before + 5, 15, "five rejects")
        # Reject points (schoolmon_reject) are the only writes: five, not 5,000.
        assert collector.storage.stats.written - written <= 5
        lines = [r for r in caplog.records if "rejected message (bad_value)" in r.getMessage()]
        assert len(lines) <= 1
    finally:
        a.close()
