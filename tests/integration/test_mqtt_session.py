"""collector/mqtt_session.py (DataSession) against a real Mosquitto, paho as the other peer.

Counts are exact: every wait is on a recorded event, and "nothing else arrived" is shown by a
marker published after the fact (the broker delivers in order, so anything queued or re-sent
would come before it).  Only a hostile or flow-controlling broker, which Mosquitto cannot play
(it PUBACKs QoS 1 at once whatever its advertised receive maximum), is a raw TCP server here.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from collector import mqtt_codec as codec
from collector.mqtt_session import DataSession
from common.config import MqttSettings
from tests.conftest import Services, start_services, wait_until
from tests.integration.delivery_peers import mqtt_client

pytestmark = pytest.mark.integration

TIMEOUT = 15.0


class Recorder:
    """A SessionHandler that records everything, subscribes on connect and acks by policy."""

    def __init__(self, filters: list[str], ack: Callable[[codec.Publish], bool] = lambda _p: True
                 ) -> None:
        self.filters = filters
        self.ack = ack
        self.session: DataSession | None = None
        self.cond = threading.Condition()
        self.connected: list[tuple[int, bool]] = []
        self.disconnected: list[tuple[float, str]] = []
        self.received: list[tuple[codec.Publish, int]] = []
        self.subacks: list[codec.SubAck] = []
        self.refused: list[str] = []

    def on_connected(self, generation: int, session_present: bool) -> None:
        with self.cond:
            self.connected.append((generation, session_present))
            self.cond.notify_all()
        if self.filters and self.session is not None:
            self.session.subscribe(self.filters)

    def on_publishes(self, publishes: list[codec.Publish], generation: int) -> None:
        assert self.session is not None
        self.session.ack_many([p.mid for p in publishes if p.qos and self.ack(p)], generation)
        with self.cond:
            self.received += [(p, generation) for p in publishes]
            self.cond.notify_all()

    def on_suback(self, suback: codec.SubAck) -> None:
        with self.cond:
            self.subacks.append(suback)
            self.cond.notify_all()

    def on_disconnected(self, reason: str) -> None:
        with self.cond:
            self.disconnected.append((time.monotonic(), reason))
            self.cond.notify_all()

    def on_refused(self, line: str) -> None:
        with self.cond:
            self.refused.append(line)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), f"timed out waiting for {what}"

    def payloads(self) -> list[bytes]:
        with self.cond:
            return [p.payload for p, _g in self.received]


def open_session(port: int, client_id: str, handler: Recorder, *, keepalive: float = 30,
                 expiry: float = 3600, receive_maximum: int | None = None,
                 protocol: Literal["v5", "v311"] = "v5") -> DataSession:
    settings = MqttSettings(host="127.0.0.1", port=port, keepalive=keepalive, protocol=protocol)
    session = DataSession(settings, client_id, handler, session_expiry_s=expiry,
                          receive_maximum=receive_maximum)
    handler.session = session
    session.start()
    return session


class PahoSubscriber:
    """A paho v5 subscriber counting payloads; ``persistent`` keeps its session on the broker."""

    def __init__(self, port: int, topic: str, *, persistent: bool = False) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.cond = threading.Condition()
        self.payloads: list[bytes] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.reconnect_delay_set(1, 2)  # back soon after a broker restart
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        # Mosquitto queues at most 1000 messages for a client beyond those in flight and drops
        # the rest: let them all be in flight to this subscriber instead.
        props.ReceiveMaximum = 65_535
        if persistent:
            props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=not persistent, properties=props)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(TIMEOUT), "paho subscriber not subscribed"

    def _on_message(self, _c: object, _u: object, msg: Any) -> None:
        with self.cond:
            self.payloads.append(msg.payload)
            self.cond.notify_all()

    def wait_distinct(self, n: int) -> set[bytes]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(set(self.payloads)) >= n, TIMEOUT), (
                f"{len(set(self.payloads))} of {n} payloads arrived")
            return set(self.payloads)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_all(port: int, topic: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 from paho and wait for every PUBACK."""
    client = mqtt_client(port, f"pub-{uuid.uuid4().hex}")
    try:
        infos = [client.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def marker_round(port: int, topic: str, rec: Recorder) -> list[bytes]:
    """Publish a marker and wait for it: what arrived before it is everything there was."""
    marker = f"marker-{uuid.uuid4().hex}".encode()
    publish_all(port, topic, [marker])
    rec.wait(lambda: any(p.payload == marker for p, _g in rec.received), "the marker")
    return [p for p in rec.payloads() if p != marker]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A Mosquitto of this module's own (the shared one also runs InfluxDB and VM)."""
    svc = start_services(tmp_path_factory.mktemp("mqtt-session"), "mosquitto")
    yield svc
    svc.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Services]:
    """A Mosquitto this test may kill or stop."""
    svc = start_services(tmp_path / "svc", "mosquitto")
    yield svc
    pid_file = svc.dir / "mosquitto.pid"
    if pid_file.exists():
        os.kill(int(pid_file.read_text()), signal.SIGCONT)  # never leave it stopped
    svc.stop()


@pytest.fixture
def thread_errors() -> Iterator[list[threading.ExceptHookArgs]]:
    """Exceptions that escaped any thread (the session's must never)."""
    errors: list[threading.ExceptHookArgs] = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    yield errors
    threading.excepthook = previous


def new_id() -> str:
    return f"ds-{uuid.uuid4().hex[:12]}"


# -- (a) receiving: acked messages stay acked, un-acked ones come again ---------------------------

def test_2000_acked_messages_are_not_redelivered_after_a_reconnect(broker: Services) -> None:
    port, cid, topic = broker.mqtt_port, new_id(), f"{new_id()}/data"
    payloads = [f"m{i}".encode() for i in range(2000)]
    rec = Recorder([topic])
    session = open_session(port, cid, rec)
    try:
        rec.wait(lambda: bool(rec.subacks), "the SUBACK")
        assert rec.subacks[0].codes == (1,)
        publish_all(port, topic, payloads)
        rec.wait(lambda: len(rec.received) >= 2000, "2000 messages")
        assert sorted(rec.payloads()) == sorted(payloads)
        assert len(rec.received) == 2000
        assert {g for _p, g in rec.received} == {1}
    finally:
        session.stop()  # the acks queued by the last on_publishes leave before DISCONNECT

    again = Recorder([])  # the resumed session keeps the subscription
    session = open_session(port, cid, again)
    try:
        again.wait(lambda: bool(again.connected), "the reconnect")
        assert again.connected == [(1, True)]
        assert marker_round(port, topic, again) == []
    finally:
        session.stop()


@pytest.mark.parametrize(("protocol", "total", "every"), [("v5", 300, 3), ("v311", 60, 6)])
def test_unacked_messages_are_redelivered_exactly_after_a_reconnect(
        broker: Services, protocol: Literal["v5", "v311"], total: int, every: int) -> None:
    port, cid, topic = broker.mqtt_port, new_id(), f"{new_id()}/data"
    payloads = [f"u{i}".encode() for i in range(total)]
    unacked = {p for i, p in enumerate(payloads) if i % every == 0}
    rec = Recorder([topic], ack=lambda p: p.payload not in unacked)
    # v5: room for every un-acked message, so the broker keeps sending while 100 wait.
    # v3.1.1 has no receive maximum: Mosquitto keeps 20 in flight, 10 of them held here.
    session = open_session(port, cid, rec, receive_maximum=1000, protocol=protocol)
    try:
        rec.wait(lambda: bool(rec.subacks), "the SUBACK")
        publish_all(port, topic, payloads)
        rec.wait(lambda: len(rec.received) >= total, f"{total} messages")
        assert len(rec.received) == total
        first_mids = {p.payload: p.mid for p, _g in rec.received}
    finally:
        session.stop()

    again = Recorder([])
    session = open_session(port, cid, again, protocol=protocol)
    try:
        again.wait(lambda: bool(again.connected), "the reconnect")
        assert again.connected == [(1, True)]
        redelivered = marker_round(port, topic, again)
        assert len(redelivered) == len(unacked)
        assert set(redelivered) == unacked
        # Re-sent with the packet ids they had (MQTT 4.4): what makes a late PUBACK dangerous.
        assert {p.payload: p.mid for p, _g in again.received if p.payload in unacked} == {
            p: first_mids[p] for p in unacked}
    finally:
        session.stop()  # everything acked now

    last = Recorder([])
    session = open_session(port, cid, last, protocol=protocol)
    try:
        last.wait(lambda: bool(last.connected), "the third connect")
        assert marker_round(port, topic, last) == []
    finally:
        session.stop(end_session=True)


# -- (b) publishing ---------------------------------------------------------------------------

def test_3000_publishes_arrive_exactly_once_on_one_connection(broker: Services) -> None:
    port, topic = broker.mqtt_port, f"{new_id()}/acks"
    # This Mosquitto advertises a receive maximum of 20 (its max_inflight_messages default),
    # so 3000 publishes go through the session's quota.  Mosquitto does not enforce it for
    # QoS 1; test_publishes_stay_within_the_brokers_receive_maximum does, with a raw broker.
    # (scripts/services.sh takes no extra Mosquitto config: a smaller one is not tried.)
    probe = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    probe.sendall(codec.connect(new_id(), v5=True, keepalive=10, clean=True))
    connack = codec.PacketReader(v5=True).feed(probe.recv(256))[0]
    probe.close()
    assert isinstance(connack, codec.ConnAck) and connack.receive_maximum == 20

    sub = PahoSubscriber(port, topic)
    rec = Recorder([])
    session = open_session(port, new_id(), rec, expiry=0)
    try:
        rec.wait(lambda: bool(rec.connected), "the connect")
        expected = {f"p{i}".encode() for i in range(3000)}
        for payload in sorted(expected):
            session.publish(topic, payload)
        assert sub.wait_distinct(3000) == expected
        wait_until(lambda: session.pending_publishes == 0, TIMEOUT, "every PUBACK")
        assert len(sub.payloads) == 3000  # no re-send on a connection that never broke
        assert rec.connected == [(1, False)]
        assert rec.disconnected == []
    finally:
        session.stop()
        sub.close()


# -- (c) the broker killed and restarted ------------------------------------------------------

def test_broker_restart_reconnects_drops_old_acks_and_delivers_queued_publishes(
        own_broker: Services) -> None:
    port, cid = own_broker.mqtt_port, new_id()
    topic_in, topic_out = f"{cid}/in", f"{cid}/out"
    sub = PahoSubscriber(port, topic_out, persistent=True)
    rec = Recorder([topic_in], ack=lambda _p: False)  # the test acks by hand
    session = open_session(port, cid, rec)
    try:
        rec.wait(lambda: bool(rec.subacks), "the SUBACK")
        publish_all(port, topic_in, [b"held"])
        rec.wait(lambda: len(rec.received) == 1, "the held message")
        held, generation = rec.received[0]
        assert generation == 1

        own_broker.stop("mosquitto")  # SIGTERM: Mosquitto saves its sessions (persistence)
        rec.wait(lambda: bool(rec.disconnected), "the disconnect")
        session.ack(held.mid, 1)  # between connections: must not go out on the next one
        out = [f"q{i}".encode() for i in range(50)]
        for payload in out:
            session.publish(topic_out, payload)
        own_broker.start("mosquitto")

        rec.wait(lambda: len(rec.connected) == 2, "the reconnect", timeout=20)
        assert rec.connected == [(1, False), (2, True)]
        rec.wait(lambda: len(rec.received) == 2, "the held message again")
        again, generation = rec.received[1]
        assert (again.payload, again.mid, generation) == (b"held", held.mid, 2)
        session.ack(held.mid, 1)  # on connection 2, for connection 1: must not be sent
        assert sub.wait_distinct(50) == set(out)
        wait_until(lambda: session.pending_publishes == 0, TIMEOUT, "every PUBACK")
    finally:
        session.stop()
        sub.close()

    # Had either ack gone out, the broker would have taken it for the re-sent message (same id).
    last = Recorder([])
    session = open_session(port, cid, last)
    try:
        last.wait(lambda: bool(last.received), "the held message a third time")
        assert last.connected == [(1, True)]
        assert [p.payload for p, _g in last.received] == [b"held"]
    finally:
        session.stop(end_session=True)


# -- (d) keepalive ----------------------------------------------------------------------------

def test_a_silent_broker_is_dropped_after_one_and_a_half_keepalives(
        own_broker: Services) -> None:
    port, topic = own_broker.mqtt_port, f"{new_id()}/ka"
    pid = int((own_broker.dir / "mosquitto.pid").read_text())
    rec = Recorder([topic])
    session = open_session(port, new_id(), rec, keepalive=2, expiry=0)
    try:
        rec.wait(lambda: bool(rec.subacks), "the SUBACK")
        publish_all(port, topic, [b"last words"])
        rec.wait(lambda: bool(rec.received), "a message")  # the broker was last heard now
        stopped_at = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            rec.wait(lambda: bool(rec.disconnected), "the keepalive timeout", timeout=8)
        finally:
            os.kill(pid, signal.SIGCONT)
        when, reason = rec.disconnected[0]
        assert reason == "no packet from the broker for 3 s"
        assert 2.5 <= when - stopped_at <= 6.0, when - stopped_at
        rec.wait(lambda: len(rec.connected) == 2, "the reconnect")
        assert rec.connected[1][0] == 2
    finally:
        session.stop()


# -- (e) hostile and flow-controlling brokers (raw TCP servers) -------------------------------

def read_packet(conn: socket.socket) -> tuple[int, bytes]:
    """One whole client packet: (first byte, body); (0, b"") when the client closed."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    try:
        first = exactly(1)[0]
        length, shift = 0, 0
        while True:
            byte = exactly(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, exactly(length)
    except (EOFError, OSError):
        return 0, b""


class RawBroker:
    """A TCP server on loopback that runs ``script`` on each connection (numbered from 1)."""

    def __init__(self, script: Callable[[socket.socket, int], None]) -> None:
        self.script = script
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.cond = threading.Condition()
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _addr = self.server.accept()
            except OSError:
                return  # closed
            with self.cond:
                self.connections += 1
                n = self.connections
                self.cond.notify_all()
            with conn:
                conn.settimeout(TIMEOUT)
                first, _body = read_packet(conn)
                assert first == 0x10, "expected CONNECT"
                self.script(conn, n)

    def wait_connections(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.connections >= n, TIMEOUT), (
                f"{self.connections} connections, waited for {n}")

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.server.close()
        self.thread.join(TIMEOUT)


CONNACK_OK = b"\x20\x03\x00\x00\x00"  # v5: no session, success, no properties


def hostile_after_subscribe(garbage: bytes) -> Callable[[socket.socket, int], None]:
    """CONNACK; once the client has subscribed (so it is past CONNACK), ``garbage``."""

    def script(conn: socket.socket, _n: int) -> None:
        conn.sendall(CONNACK_OK)
        first, _body = read_packet(conn)
        if first == codec.SUBSCRIBE:
            conn.sendall(garbage)
            while read_packet(conn)[0]:  # until the client hangs up
                pass

    return script


@pytest.mark.parametrize(("garbage", "what"), [
    (b"\x00\x00\x00\x00", "unexpected packet type 0"),
    (b"\x30" + codec.varint(200 * 1024 * 1024) + b"\x00\x01", "a packet of 209715200 bytes"),
    (b"\x30\xff\xff\xff\xff\x01", "remaining length longer than 4 bytes"),
    (b"\x34\x06\x00\x01t\x00\x01x", "malformed PUBLISH (QoS 2)"),
    (CONNACK_OK, "a second CONNACK"),
], ids=["reserved-type", "200MB", "5-byte-length", "qos2", "second-connack"])
def test_garbage_after_connack_is_a_protocol_error_and_the_session_retries(
        thread_errors: list[threading.ExceptHookArgs], garbage: bytes, what: str) -> None:
    raw = RawBroker(hostile_after_subscribe(garbage))
    rec = Recorder(["t/#"])
    session = open_session(raw.port, new_id(), rec, expiry=0)
    try:
        rec.wait(lambda: bool(rec.disconnected), "the protocol error")
        assert rec.disconnected[0][1] == f"protocol error: {what}"
        raw.wait_connections(2)  # it keeps retrying
        rec.wait(lambda: len(rec.disconnected) >= 2, "the second protocol error")
        assert rec.connected[:2] == [(1, False), (2, False)]
        assert rec.received == []
    finally:
        session.stop()
        raw.close()
    assert thread_errors == []


def test_garbage_in_the_connack_segment_fails_the_connect_and_is_retried(
        thread_errors: list[threading.ExceptHookArgs]) -> None:
    # CONNACK and a 200 MB announcement in one send: the error comes while connecting.
    def script(conn: socket.socket, _n: int) -> None:
        conn.sendall(CONNACK_OK + b"\x30" + codec.varint(200 * 1024 * 1024))
        while read_packet(conn)[0]:
            pass

    raw = RawBroker(script)
    rec = Recorder([])
    session = open_session(raw.port, new_id(), rec, expiry=0)
    try:
        raw.wait_connections(2)
        assert rec.connected == [] and rec.disconnected == [] and rec.refused == []
    finally:
        session.stop()
        raw.close()
    assert thread_errors == []


def parse_publish(first: int, body: bytes) -> tuple[int, bytes, bool]:
    """A v5 QoS 1 PUBLISH from the session: (packet id, payload, DUP)."""
    assert first & 0xF6 == 0x32, f"not a QoS 1 PUBLISH: {first:#x}"
    topic_len = struct.unpack_from("!H", body)[0]
    mid = struct.unpack_from("!H", body, 2 + topic_len)[0]
    assert body[4 + topic_len] == 0  # no properties
    return mid, body[5 + topic_len:], bool(first & 0x08)


def test_publishes_stay_within_the_brokers_receive_maximum() -> None:
    state: dict[str, Any] = {"seen": [], "before_acks": None}
    cond = threading.Condition()
    total = 12

    def script(conn: socket.socket, _n: int) -> None:
        conn.sendall(b"\x20\x06\x00\x00\x03\x21\x00\x03")  # CONNACK, Receive Maximum 3
        subscribes = 0
        while subscribes < 2:  # no PUBACK until the test's second SUBSCRIBE (a barrier)
            first, body = read_packet(conn)
            if first == codec.SUBSCRIBE:
                subscribes += 1
                conn.sendall(b"\x90\x04" + body[:2] + b"\x00\x01")  # SUBACK
            elif first & 0xF0 == codec.PUBLISH:
                with cond:
                    state["seen"].append(parse_publish(first, body))
                    cond.notify_all()
            else:
                return
        state["before_acks"] = len(state["seen"])
        conn.sendall(b"".join(codec.puback(mid) for mid, _p, _d in state["seen"]))
        while len(state["seen"]) < total:
            first, body = read_packet(conn)
            if first & 0xF0 == codec.PUBLISH:
                mid, payload, dup = parse_publish(first, body)
                state["seen"].append((mid, payload, dup))
                conn.sendall(codec.puback(mid))
            elif not first:
                return
        with cond:
            cond.notify_all()
        while read_packet(conn)[0]:
            pass

    raw = RawBroker(script)
    rec = Recorder([])
    session = open_session(raw.port, new_id(), rec, expiry=0)
    try:
        rec.wait(lambda: bool(rec.connected), "the connect")
        for i in range(total):
            session.publish("t/out", f"r{i}".encode())
        with cond:
            assert cond.wait_for(lambda: len(state["seen"]) >= 3, TIMEOUT)
        # Every publish was queued before this SUBSCRIBE: whatever the session would send
        # beyond the quota is in the stream before the second one.
        session.subscribe(["barrier/1"])
        rec.wait(lambda: bool(rec.subacks), "the first SUBACK")
        session.subscribe(["barrier/2"])
        with cond:
            assert cond.wait_for(lambda: len(state["seen"]) >= total, TIMEOUT)
        assert state["before_acks"] == 3
        assert sorted(p for _m, p, _d in state["seen"]) == sorted(
            f"r{i}".encode() for i in range(total))
        wait_until(lambda: session.pending_publishes == 0, TIMEOUT, "every PUBACK")
        assert rec.disconnected == []
    finally:
        session.stop()
        raw.close()


def test_inflight_publishes_are_resent_with_dup_and_their_ids_after_a_reconnect() -> None:
    seen: dict[int, list[tuple[int, bytes, bool]]] = {1: [], 2: []}
    cond = threading.Condition()

    def script(conn: socket.socket, n: int) -> None:
        # First connection: take two publishes, ack none, hang up.  Second: session present.
        conn.sendall(CONNACK_OK if n == 1 else b"\x20\x03\x01\x00\x00")
        while len(seen.get(n, [])) < 2:
            first, body = read_packet(conn)
            if first & 0xF0 != codec.PUBLISH:
                return
            with cond:
                seen[n].append(parse_publish(first, body))
                cond.notify_all()
        if n == 2:
            conn.sendall(b"".join(codec.puback(mid) for mid, _p, _d in seen[2]))
            while read_packet(conn)[0]:
                pass

    raw = RawBroker(script)
    rec = Recorder([])
    session = open_session(raw.port, new_id(), rec)
    try:
        rec.wait(lambda: bool(rec.connected), "the connect")
        session.publish("t/out", b"one")
        session.publish("t/out", b"two")
        with cond:
            assert cond.wait_for(lambda: len(seen[2]) == 2, TIMEOUT)
        assert [d for _m, _p, d in seen[1]] == [False, False]
        assert seen[2] == [(m, p, True) for m, p, _d in seen[1]]
        wait_until(lambda: session.pending_publishes == 0, TIMEOUT, "the PUBACKs")
        assert rec.connected == [(1, False), (2, True)]
    finally:
        session.stop()
        raw.close()


# -- (f) a wrong password: services.sh starts Mosquitto with anonymous access only; the
# refusal path is covered by tests/integration/test_security.py.

# -- (g) ending the session -------------------------------------------------------------------

@pytest.mark.parametrize("end_session", [True, False])
def test_stop_with_end_session_leaves_nothing_queued(broker: Services, end_session: bool) -> None:
    port, cid, topic = broker.mqtt_port, new_id(), f"{new_id()}/data"
    rec = Recorder([topic])
    session = open_session(port, cid, rec)
    rec.wait(lambda: bool(rec.subacks), "the SUBACK")
    session.stop(end_session=end_session)
    while_away = [f"away{i}".encode() for i in range(5)]
    publish_all(port, topic, while_away)

    again = Recorder([topic])  # subscribes again: a new session has no subscription
    session = open_session(port, cid, again)
    try:
        again.wait(lambda: bool(again.subacks), "the SUBACK")
        if end_session:
            assert again.connected == [(1, False)]
            assert marker_round(port, topic, again) == []
        else:  # the control: the same steps without ending the session
            assert again.connected == [(1, True)]
            assert sorted(marker_round(port, topic, again)) == sorted(while_away)
    finally:
        session.stop(end_session=True)
