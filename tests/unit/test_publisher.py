"""The publisher's ack handling and resend policy, with a real spool (no broker needed)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt.client import MQTTMessage

from agent.config import AgentConfig
from agent.publisher import Publisher, resend_wait_ms
from agent.spool import Spool
from common.wire import encode_ack

TS = 1_763_890_000_000


def config(tmp_path: Path) -> AgentConfig:
    """An agent config with a 10 s ack timeout and a 60 s resend cap."""
    return AgentConfig.model_validate({
        "agent": {"id": "gw", "school": "s1", "district": "d1"},
        "spool": {"path": str(tmp_path / "spool.db")},
        "publish": {"ack_timeout": "10s", "resend_max": "60s"},
    })


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    """A real spool holding five batches of 1..5 samples."""
    s = Spool(tmp_path / "spool.db", 10**9, 86400.0, clock_ms=lambda: TS).open()
    for n in range(1, 6):
        s.append(b"[" + b"0" * n + b"]", n)
    yield s
    s.close()


def message(payload: bytes) -> MQTTMessage:
    """An ack as paho hands it to on_message."""
    msg = MQTTMessage(topic=b"schoolmon/v1/d1/s1/gw/ack")
    msg.payload = payload
    return msg


def test_rejected_batches_are_dropped_counted_and_logged(tmp_path: Path, spool: Spool,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """An ack naming rejected seqs deletes them, counts their samples, logs one line each."""
    pub = Publisher(config(tmp_path), spool, clock_ms=lambda: TS)
    with caplog.at_level(logging.ERROR, logger="agent.publisher"):
        pub._on_message(None, None, message(
            encode_ack([(1, 1)], rejected=[(2, "too_large"), (4, "version")])))
    stats = spool.stats()
    assert (stats.depth, stats.dropped_total, stats.rejected_total) == (2, 2 + 4, 2 + 4)
    assert [b.seq for b in spool.due(10, 0)] == [3, 5]
    assert (pub.acked_batches, pub.rejected_batches) == (1, 2)
    assert [r.getMessage() for r in caplog.records] == [
        "collector rejected batch 2 (2 samples) for good: too_large; dropped",
        "collector rejected batch 4 (4 samples) for good: version; dropped",
    ]


def test_spool_errors_in_callbacks_are_logged_once_never_raised(
        tmp_path: Path, spool: Spool, caplog: pytest.LogCaptureFixture) -> None:
    """A closed (or full, or broken) spool must not raise inside paho's network thread."""
    pub = Publisher(config(tmp_path), spool, clock_ms=lambda: TS)
    spool.close()
    with caplog.at_level(logging.ERROR, logger="agent.publisher"):
        for _ in range(3):
            pub._on_message(None, None, message(encode_ack([(1, 2)], rejected=[(3, "x")])))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("spool ack failed")
    assert pub.acked_batches == 0


def test_resend_wait_doubles_up_to_the_cap() -> None:
    """ack_timeout x 2^(n-1), capped at resend_max (never below ack_timeout)."""
    assert [resend_wait_ms(n, 10_000, 60_000) for n in range(1, 7)] == [
        10_000, 20_000, 40_000, 60_000, 60_000, 60_000]
    assert resend_wait_ms(1, 10_000, 1_000) == 10_000
    assert resend_wait_ms(10_000, 10_000, 60_000) == 60_000  # no overflow for long outages
