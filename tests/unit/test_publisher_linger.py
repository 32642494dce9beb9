"""publish.linger in the publisher: fewer messages, none held past the linger or a clean stop,
a backlog at once, and linger 0 as before.  Real spool, injected clocks and transport."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import MQTTMessage

from agent.config import AgentConfig
from agent.publisher import Publisher
from agent.spool import Spool
from common.wire import Envelope, Sample, decode_envelope, encode_ack, encode_samples
from tests.clocks import MsClock

T0 = 1_763_890_000_000


@dataclass
class Info:
    """What paho's publish returns."""

    rc: int = 0


class Transport:
    """A connected client that records each data message (and can ack it at once)."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []
        self.on_publish: Any = None

    def publish(self, _topic: str, payload: bytes, qos: int = 0) -> Info:
        """Record the envelope; hand it to ``on_publish`` (a collector that acks)."""
        assert qos == 1
        env = decode_envelope(payload)
        self.sent.append(env)
        if self.on_publish is not None:
            self.on_publish(env)
        return Info()


def config(tmp_path: Path, **agent: Any) -> AgentConfig:
    """An agent config; ``agent`` adds keys (role) and ``publish`` keys via linger=..."""
    publish = {"ack_timeout": "10s"}
    if "linger" in agent:
        publish["linger"] = agent.pop("linger")
    return AgentConfig.model_validate({
        "agent": {"id": "gw", "school": "s1", "district": "d1", **agent},
        "spool": {"path": str(tmp_path / "spool.db")},
        "publish": publish,
    })


@dataclass
class Rig:
    """A publisher over a real spool with its clocks and transport."""

    pub: Publisher
    spool: Spool
    wall: MsClock
    mono: MsClock
    net: Transport

    def run(self, at_ms: int, first: int, n: int = 1) -> None:
        """A probe run at monotonic ``at_ms`` spools ``n`` samples."""
        self.mono.now_ms, self.wall.now_ms = at_ms, T0 + at_ms
        self.spool.append(encode_samples([Sample("host", T0 + i, {}, {"cpu_pct": 1.0})
                                          for i in range(first, first + n)]), n)

    def pump_at(self, at_ms: int, *, flush: bool = False) -> int:
        """Pump at monotonic (and wall) time ``at_ms``."""
        self.mono.now_ms, self.wall.now_ms = at_ms, T0 + at_ms
        return self.pub.pump(flush=flush)

    def ack_all(self) -> None:
        """The collector acks every envelope sent so far."""
        for env in list(self.net.sent):
            msg = MQTTMessage(topic=b"schoolmon/v1/d1/s1/gw/ack")
            msg.payload = encode_ack([(env.seq, env.seq)])
            self.pub._on_message(None, None, msg)


def make_rig(tmp_path: Path, linger: str | None = "30s", **agent: Any) -> Iterator[Rig]:
    """Build and tear down a rig."""
    wall, mono = MsClock(T0), MsClock(0)
    cfg = config(tmp_path, **agent) if linger is None else config(tmp_path, linger=linger,
                                                                    **agent)
    spool = Spool(cfg.spool.path, 10**9, 86400.0, clock_ms=wall, mono_ms=mono).open()
    pub = Publisher(cfg, spool, clock_ms=wall)
    net = Transport()
    pub.use_client(net)
    yield Rig(pub, spool, wall, mono, net)
    spool.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A publisher with a linger of 30 s."""
    yield from make_rig(tmp_path)


def stamps(env: Envelope) -> list[int]:
    """The envelope's samples by number."""
    return [s.ts_ms - T0 for s in env.samples]


def test_runs_within_the_linger_go_as_one_message_stamped_when_sent(rig: Rig) -> None:
    """Four runs in 25 s: no message before 30 s after the first, then one with all samples,
    its sent_ms the publish time (the collector's clock estimate reads that)."""
    for i, at in enumerate((0, 10_000, 20_000, 25_000)):
        rig.run(at, 2 * i, 2)
        assert rig.pump_at(at) == 0
    assert rig.pump_at(29_999) == 0
    assert rig.pump_at(30_000) == 1
    [env] = rig.net.sent
    assert stamps(env) == list(range(8))
    assert env.sent_ms == T0 + 30_000
    rig.ack_all()
    assert rig.spool.stats().depth == 0


def test_a_sample_never_waits_longer_than_the_linger(rig: Rig) -> None:
    """Runs every 10 s, pumped every 200 ms and acked at once: each sample leaves within
    30 s of its run, three runs to a message."""
    published_at: dict[int, int] = {}
    for t in range(0, 160_000, 200):
        if t % 10_000 == 0 and t < 120_000:
            rig.run(t, t // 10_000)
        before = len(rig.net.sent)
        rig.pump_at(t)
        for env in rig.net.sent[before:]:
            for n in stamps(env):
                assert n not in published_at  # acked: never sent twice
                published_at[n] = t
        rig.ack_all()
    waits = [published_at[k] - k * 10_000 for k in range(12)]
    assert max(waits) <= 30_000
    assert [stamps(e) for e in rig.net.sent] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_a_backlog_goes_at_once_merged(rig: Rig) -> None:
    """Stored while the broker was away: due at the first pump, merged by linger windows."""
    for k in range(10):
        rig.run(k * 10_000, k)
    rig.pub.connected.clear()
    assert rig.pump_at(300_000) == 0  # not connected
    rig.pub.connected.set()
    assert rig.pump_at(300_000) == 3
    assert [stamps(e) for e in rig.net.sent] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_flush_sends_what_lingers_and_waits_for_its_ack(rig: Rig) -> None:
    """A clean stop: the lingering batches go at once, and flush returns once acked."""
    rig.run(0, 0, 3)
    rig.run(1_000, 3, 2)
    rig.net.on_publish = lambda _env: rig.ack_all()
    assert rig.pub.flush(5.0) is True
    assert [stamps(e) for e in rig.net.sent] == [[0, 1, 2, 3, 4]]
    assert rig.spool.stats().depth == 0


def test_flush_without_an_ack_gives_up_and_keeps_the_batch(rig: Rig) -> None:
    """No ack within the wait: the batch stays spooled (the next start sends it)."""
    rig.run(0, 0, 1)
    assert rig.pub.flush(0.0) is False
    assert len(rig.net.sent) == 1
    assert rig.spool.stats().depth == 1


def test_linger_zero_is_one_message_per_run_at_once(tmp_path: Path) -> None:
    """publish.linger: 0s behaves as before the setting existed."""
    for rig in make_rig(tmp_path, linger="0s"):
        for k in range(3):
            rig.run(k * 1_000, k)
            assert rig.pump_at(k * 1_000) == 1
        assert [stamps(e) for e in rig.net.sent] == [[0], [1], [2]]


@pytest.mark.parametrize(("role", "linger", "expected"), [
    (None, None, 0.0), ("gateway", None, 30.0), ("classroom_pc", None, 60.0),
    ("classroom_pc", "0s", 0.0), ("gateway", "2m", 120.0)])
def test_the_default_linger_follows_the_agent_role(
        tmp_path: Path, role: str | None, linger: str | None, expected: float) -> None:
    """Per role unless set; no role keeps sending at once."""
    agent = {} if role is None else {"role": role}
    cfg = config(tmp_path, **agent) if linger is None else config(tmp_path, linger=linger,
                                                                    **agent)
    assert cfg.linger_s == expected


def test_a_linger_past_ten_minutes_is_refused(tmp_path: Path) -> None:
    """Longer would make an agent look stale (rules.stale_after, 15 min) between messages."""
    with pytest.raises(ValueError, match="linger"):
        config(tmp_path, linger="11m")
