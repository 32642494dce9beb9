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


def test_a_broker_that_reads_nothing_is_left_after_one_and_a_half_keepalives() -> None:
    """It answers (PINGRESPs keep coming) but never reads: our bytes pile up unsent.

    The first session spun at full CPU on the unsendable bytes until the keepalive cut, and
    for ever while the broker kept sending.
    """
    import threading
    import time

    stop = threading.Event()

    def script(conn: socket.socket, n: int) -> None:
        conn.sendall(b"\x20\x03\x00\x00\x00")  # CONNACK v5, success
        if n > 1:
            return
        while not stop.wait(0.2):
            try:
                conn.sendall(b"\xd0\x00")  # PINGRESP: never silent, never reading
            except OSError:
                return

    raw = RawBroker(script)
    rec = Recorder([])
    session = open_session(raw.port, new_id(), rec, expiry=0, keepalive=2)
    try:
        rec.wait(lambda: bool(rec.connected), "the connect")
        for _ in range(256):  # 64 MiB: far more than the socket buffers hold
            session.publish("t/out", b"x" * 256 * 1024)
        cpu_begun = time.process_time()
        rec.wait(lambda: bool(rec.disconnected), "the cut", timeout=10)
        assert rec.disconnected[0][1] == "the broker has read nothing from us for 3 s"
        # Waiting, not spinning: the whole process (this test included) used well under the
        # wall time that passed.
        assert time.process_time() - cpu_begun < 1.5
        raw.wait_connections(2)  # and it connects again
    finally:
        stop.set()
        session.stop()
        raw.close()
