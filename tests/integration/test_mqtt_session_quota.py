"""A broker that announces a Receive Maximum of 0 (MQTT 5 3.2.2.3.3: a protocol error).

The first session took the quota at its word and held every publish for ever, with no
disconnect and no log line.  Now the CONNACK is refused as a protocol error, logged once and
the connect retried: never a silent stall.
"""

from __future__ import annotations

import logging
import socket

import pytest

from tests.integration.test_mqtt_session import (
    RawBroker,
    Recorder,
    new_id,
    open_session,
    read_packet,
)


def test_a_connack_with_receive_maximum_0_is_refused_and_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    def script(conn: socket.socket, _n: int) -> None:
        conn.sendall(b"\x20\x06\x00\x00\x03\x21\x00\x00")  # CONNACK, Receive Maximum 0
        while read_packet(conn)[0]:
            pass

    raw = RawBroker(script)
    rec = Recorder([])
    caplog.set_level(logging.WARNING, logger="collector.mqtt_session")
    session = open_session(raw.port, new_id(), rec, expiry=0)
    try:
        session.publish("t/out", b"x")
        raw.wait_connections(2)  # retried after the 1 s delay, not stuck on the first
        assert rec.connected == []  # never taken for a working connection
        lines = [r.getMessage() for r in caplog.records]
        assert any("CONNACK with receive maximum 0" in line for line in lines), lines
        assert session.pending_publishes == 1  # kept for a broker that works
    finally:
        session.stop()
        raw.close()
