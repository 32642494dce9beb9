"""Several brokers and the PUBACK watchdog (agent/link.py) through the publisher: a real spool,
injected clocks and a fake paho network that records every client and its server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from paho.mqtt.client import MQTTMessage

from agent.config import AgentConfig
from agent.link import backoff_ms
from agent.publisher import Publisher
from agent.spool import Spool
from common.config import ConfigError, load_model
from common.wire import Sample, decode_envelope, encode_ack, encode_samples
from tests.clocks import MsClock

T0 = 1_763_890_000_000


@dataclass
class Reason:
    """A CONNACK or disconnect reason as paho hands it over."""

    is_failure: bool = False
    value: int = 0


@dataclass
class Info:
    """paho's MQTTMessageInfo: published once the broker's PUBACK came."""

    mid: int
    rc: int = 0
    acked: bool = False

    def is_published(self) -> bool:
        return self.acked

    def wait_for_publish(self, _timeout: float) -> None:
        """The stop path waits for "offline"; nothing to wait for here."""


@dataclass
class FakeClient:
    """One paho client: where it connects, what it publishes, whether it was retired."""

    server: tuple[str, int] | None = None
    published: list[tuple[str, bytes, Info]] = field(default_factory=list)
    retired: bool = False
    on_connect: Any = None
    on_disconnect: Any = None
    on_connect_fail: Any = None
    on_pre_connect: Any = None
    on_message: Any = None

    def will_set(self, *_a: Any, **_k: Any) -> None:
        """Last will: not modelled."""

    def reconnect_delay_set(self, **_k: Any) -> None:
        """paho's own back-off: not modelled."""

    def max_inflight_messages_set(self, _n: int) -> None:
        """paho's window: not modelled."""

    def connect_async(self, host: str, port: int, **_k: Any) -> None:
        self.server = (host, port)

    def loop_start(self) -> None:
        """The network thread opens the connection; the test drives the rest."""
        self.on_pre_connect(self, None)

    def loop_stop(self) -> None:
        """Joined by the retiring thread."""

    def drop_out_messages(self) -> list[Any]:
        return []

    def disconnect(self) -> None:
        self.retired = True

    def subscribe(self, *_a: Any, **_k: Any) -> None:
        """The ack subscription: not modelled."""

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Info:
        assert qos == 1
        # The broker acks the retained status at once; data PUBACKs are the test's to give.
        info = Info(mid=len(self.published) + 1, acked=topic.endswith("/status"))
        self.published.append((topic, payload, info))
        return info

    def up(self) -> None:
        """The broker's CONNACK (success) arrives."""
        self.on_connect(self, None, None, Reason(), None)

    def down(self) -> None:
        """The connection is lost."""
        self.on_disconnect(self, None, None, Reason(True, 7), None)

    def data(self) -> list[Info]:
        """The PUBLISHes of data envelopes (not the status)."""
        return [i for t, _p, i in self.published if t.endswith("/data")]

    def seqs(self) -> list[int]:
        return [decode_envelope(p).seq for t, p, _i in self.published if t.endswith("/data")]


@dataclass
class Rig:
    """A started publisher over a real spool and a fake network."""

    pub: Publisher
    spool: Spool
    mono: MsClock
    clients: list[FakeClient]

    @property
    def client(self) -> FakeClient:
        return self.clients[-1]

    def store(self, n: int) -> None:
        """Spool ``n`` batches of one sample."""
        for i in range(n):
            self.spool.append(encode_samples([Sample("host", T0 + i, {}, {"cpu_pct": 1.0})]), 1)

    def pump_at(self, at_ms: int) -> int:
        self.mono.now_ms = at_ms
        return self.pub.pump()

    def ack(self, seqs: list[int]) -> None:
        msg = MQTTMessage(topic=b"schoolmon/v1/d1/s1/gw/ack")
        msg.payload = encode_ack([(s, s) for s in seqs])
        self.pub._on_message(None, None, msg)


def agent_config(tmp_path: Path, mqtt: dict[str, Any]) -> AgentConfig:
    return AgentConfig.model_validate({
        "agent": {"id": "gw", "school": "s1", "district": "d1"},
        "mqtt": mqtt,
        "spool": {"path": str(tmp_path / "spool.db")},
        "publish": {"ack_timeout": "60s", "puback_timeout": "30s", "reconnect_min": "2s",
                    "reconnect_max": "8s", "linger": "0s"},
    })


def make_rig(tmp_path: Path, mqtt: dict[str, Any]) -> Iterator[Rig]:
    cfg = agent_config(tmp_path, mqtt)
    mono = MsClock(0)
    spool = Spool(cfg.spool.path, 10**9, 86400.0, clock_ms=lambda: T0 + mono.now_ms,
                  mono_ms=mono).open()
    pub = Publisher(cfg, spool, clock_ms=lambda: T0 + mono.now_ms)
    clients: list[FakeClient] = []

    def factory(_settings: Any, _client_id: str) -> FakeClient:
        clients.append(FakeClient())
        return clients[-1]

    pub.start(factory=factory, mono_ms=mono)
    yield Rig(pub, spool, mono, clients)
    pub.stop()
    spool.close()


THREE = {"servers": ["10.0.0.1:1883", "10.0.0.2", "[2001:db8::3]:8883"], "port": 1884}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, THREE)


def test_servers_parse_with_the_default_port_and_host_keeps_working(tmp_path: Path) -> None:
    """servers: entries without a port take port:; without servers, host/port as before."""
    assert agent_config(tmp_path, THREE).mqtt.server_list() == [
        ("10.0.0.1", 1883), ("10.0.0.2", 1884), ("2001:db8::3", 8883)]
    assert agent_config(tmp_path, {"host": "broker:8883"}).mqtt.server_list() == [
        ("broker", 8883)]


@pytest.mark.parametrize(("mqtt", "why"), [
    ({"host": "a", "servers": ["b:1"]}, "servers: give the brokers there, or host:, not both"),
    ({"servers": ["b:1", "b:1"]}, "duplicate server 'b:1'"),
    ({"servers": ["b:0"]}, "the port must be 1..65535"),
])
def test_bad_servers_are_one_config_line(tmp_path: Path, mqtt: dict[str, Any], why: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({"agent": {"id": "gw", "school": "s1", "district": "d1"},
                                    "mqtt": mqtt}))
    with pytest.raises(ConfigError) as err:
        load_model(AgentConfig, path)
    assert len(err.value.lines) == 1 and why in err.value.lines[0], err.value.lines


def test_a_stalled_broker_is_left_for_the_next_and_the_spool_resends(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """No PUBACK for puback_timeout: one line naming both servers, a new client on the next
    server, and every batch not acked by the collector published again there."""
    assert rig.client.server == ("10.0.0.1", 1883)
    rig.client.up()
    rig.store(3)
    assert rig.pump_at(1_000) == 3
    first = rig.client
    rig.ack([1])  # the collector stored seq 1; seqs 2 and 3 never reached it
    first.data()[0].acked = True  # the broker's PUBACK of seq 1, seen at once
    rig.pump_at(1_000)
    with caplog.at_level(logging.WARNING, logger="agent.link"):
        rig.pump_at(30_999)  # seq 2 waits 29.999 s: not yet
        assert len(rig.clients) == 1
        rig.pump_at(31_000)
    assert len(rig.clients) == 2 and first.retired
    assert [r.getMessage() for r in caplog.records] == [
        "no PUBACK from 10.0.0.1:1883 for 30s; connecting to 10.0.0.2:1884"]
    assert rig.pub.pump() == 0  # not connected yet: nothing goes out
    rig.client.up()
    assert rig.pump_at(31_100) == 2 and rig.client.seqs() == [2, 3]
    rig.ack([2, 3])  # the collector's acks, over the new connection
    assert rig.spool.stats().depth == 0


def test_pubacks_in_time_keep_the_connection(rig: Rig) -> None:
    """Each PUBACK within the timeout: the watchdog never fires, however long it runs."""
    rig.client.up()
    for minute in range(10):
        rig.store(1)
        assert rig.pump_at(minute * 60_000) == 1
        rig.pump_at(minute * 60_000 + 29_999)  # the watchdog looks just before the PUBACK
        rig.client.data()[-1].acked = True
        rig.ack([minute + 1])
    rig.pump_at(10 * 60_000)
    assert len(rig.clients) == 1 and rig.pub.link is not None and rig.pub.link.switches == 0


def test_time_before_a_connect_does_not_count(rig: Rig) -> None:
    """A message published before a reconnect is timed from the reconnect, not its publish."""
    rig.client.up()
    rig.store(1)
    rig.pump_at(0)
    rig.mono.now_ms = 25_000
    rig.client.on_disconnect(rig.client, None, None, Reason(True, 7), None)
    rig.pump_at(25_000)  # a lost connection: the next server at once
    second = rig.client
    assert second.server == ("10.0.0.2", 1884)
    second.up()
    rig.pump_at(25_000)
    second.data()[0].acked = True  # seq 1 again, on the new server
    rig.store(1)
    rig.pump_at(26_000)
    rig.pump_at(55_999)  # 30 s after 25 s + its own publish at 26 s: not yet
    assert len(rig.clients) == 2


def test_a_lost_connection_moves_on_at_once_and_wraps_round(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Lost: the next server at the next pump; after the last one, the first again."""
    with caplog.at_level(logging.WARNING, logger="agent.link"):
        for _ in range(3):
            rig.client.up()
            rig.client.down()
            rig.pump_at(rig.mono.now_ms)
    assert [c.server for c in rig.clients] == [
        ("10.0.0.1", 1883), ("10.0.0.2", 1884), ("2001:db8::3", 8883), ("10.0.0.1", 1883)]
    assert [r.getMessage().split("; ")[1] for r in caplog.records
            if r.name == "agent.link"] == [
        "connecting to 10.0.0.2:1884", "connecting to [2001:db8::3]:8883",
        "connecting to 10.0.0.1:1883"]
    assert all(c.retired for c in rig.clients[:-1]) and not rig.client.retired


def test_failed_connects_move_on_after_a_doubling_back_off(rig: Rig) -> None:
    """A server that refuses connects: the next after reconnect_min, then 2x, up to the max;
    a connect that succeeds starts the back-off again."""
    switched_at = []
    for _ in range(5):
        start = rig.mono.now_ms
        rig.client.on_connect_fail(rig.client, None)
        n = len(rig.clients)
        while len(rig.clients) == n:
            rig.pump_at(rig.mono.now_ms + 500)
        switched_at.append(rig.mono.now_ms - start)
    assert switched_at == [2_000, 4_000, 8_000, 8_000, 8_000]
    rig.client.up()
    rig.client.on_connect(rig.client, None, None, Reason(True, 135), None)  # refused later
    rig.pump_at(rig.mono.now_ms + 1_999)
    assert len(rig.clients) == 6
    rig.pump_at(rig.mono.now_ms + 1)
    assert len(rig.clients) == 7
    assert [backoff_ms(n, 1_000, 5_000) for n in range(1, 5)] == [1_000, 2_000, 4_000, 5_000]


def test_callbacks_of_a_retired_client_are_ignored(rig: Rig) -> None:
    """A retired client's late CONNACK or disconnect must not touch the new connection."""
    old = rig.client
    old.on_connect_fail(old, None)
    rig.pump_at(2_000)
    new = rig.client
    assert new is not old
    # The retired client's callbacks were cut; even a late call through the link is ignored.
    assert old.on_connect is None and old.on_disconnect is None
    new.on_connect(old, None, None, Reason(), None)
    assert not rig.pub.connected.is_set()
    new.up()
    new.on_disconnect(old, None, None, Reason(True, 7), None)
    assert rig.pub.connected.is_set()


def test_one_server_reconnects_to_it_only_after_a_stall(tmp_path: Path) -> None:
    """host: only: paho keeps reconnecting on its own (no switch on a lost connection); the
    watchdog still replaces a stalled connection, to the same server."""
    for r in make_rig(tmp_path, {"host": "broker", "port": 1883}):
        r.client.up()
        r.client.down()
        r.pump_at(60_000)
        assert len(r.clients) == 1
        r.client.on_connect_fail(r.client, None)  # paho's own retries: nothing to wait for
        r.pump_at(120_000)
        assert len(r.clients) == 1
        r.client.on_pre_connect(r.client, None)
        r.client.up()
        r.store(1)
        r.pump_at(120_000)
        r.pump_at(150_000)
        assert [c.server for c in r.clients] == [("broker", 1883), ("broker", 1883)]


def test_a_connack_that_never_comes_moves_on(rig: Rig,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """TCP accepted, no CONNACK (a NATS node that cannot load the session): after
    puback_timeout the next server; a refused TCP connect is not timed (no connection)."""
    with caplog.at_level(logging.WARNING, logger="agent.link"):
        rig.pump_at(29_999)
        assert len(rig.clients) == 1
        rig.pump_at(30_000)
    assert [c.server for c in rig.clients] == [("10.0.0.1", 1883), ("10.0.0.2", 1884)]
    assert caplog.records[-1].getMessage() == (
        "no CONNACK from 10.0.0.1:1883 for 30s; connecting to 10.0.0.2:1884")
    rig.client.on_connect_fail(rig.client, None)  # back-off 2 s, then the third server
    rig.pump_at(31_999)
    assert len(rig.clients) == 2
    rig.pump_at(32_000)
    assert rig.client.server == ("2001:db8::3", 8883)


def test_a_slow_uplink_that_acks_now_and_then_is_not_stalled(rig: Rig) -> None:
    """A backlog published at once over a slow link: PUBACKs every 20 s, the last one after
    100 s.  Each PUBACK restarts the wait: no switch; then 30 s without one: a switch."""
    rig.client.up()
    rig.store(5)
    assert rig.pump_at(0) == 5
    for k, info in enumerate(rig.client.data()):
        rig.pump_at(k * 20_000 + 19_999)
        info.acked = True
    rig.pump_at(100_000)
    assert len(rig.clients) == 1
    rig.store(1)
    rig.pump_at(100_000)  # published at 100 s; the last PUBACK seen at 100 s
    rig.pump_at(129_999)
    assert len(rig.clients) == 1
    rig.pump_at(130_000)
    assert len(rig.clients) == 2
