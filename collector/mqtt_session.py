"""The collector's data connection to the broker: one thread reads, writes and reconnects.

Why not paho here (issue 11, measured in bench/ingest_drain.py): the collector receives
thousands of small QoS 1 messages a second and answers each with a PUBACK and an agent ack.
paho reads each packet with several ``recv`` calls, builds objects per packet and wakes its
thread per outgoing packet; its bare subscriber drains ~11,000 messages/s on this machine,
a whole core before the collector has done anything.  This session reads everything waiting
in one ``recv``, decodes it with collector/mqtt_codec.py and hands the messages over as one
list; PUBACKs and acks from other threads are queued and leave in one ``send``.  The lease,
the shard watcher and the agents keep paho: they handle a few messages a minute.

What it does of MQTT: CONNECT with the settings' TLS, credentials, protocol (v5 or 3.1.1),
session expiry and receive maximum; QoS 1 subscriptions; QoS 1 publishes within the broker's
receive maximum, re-sent (DUP) after a reconnect until their PUBACK; keepalive PINGREQs, and a
connection that has been silent for 1.5 keepalives is dropped (3.1.2.10); reconnects with a
doubling delay of 1-30 s.  A PUBACK belongs to the connection its message came on: ``ack``
takes the generation and drops it after a reconnect (the broker re-sends that message).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

from collector import mqtt_codec as codec
from collector.mqtt_socket import (
    RECV_BYTES,
    REFUSALS,
    V311_REFUSALS,
    flush,
    receive,
    send,
    tls_context,
)
from common.config import MqttSettings
from common.mqtt import UNSUPPORTED_PROTOCOL, protocol_refusal

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 10.0
MIN_RETRY_S, MAX_RETRY_S = 1.0, 30.0

class SessionHandler(Protocol):
    """What the session tells its owner; called in the session's thread."""

    def on_connected(self, generation: int, session_present: bool) -> None:
        """A connection is up (subscribe here)."""

    def on_publishes(self, publishes: list[codec.Publish], generation: int) -> None:
        """Messages that arrived together, in order; may block (back-pressure)."""

    def on_suback(self, suback: codec.SubAck) -> None:
        """The broker answered a SUBSCRIBE."""

    def on_disconnected(self, reason: str) -> None:
        """The connection ended; the session reconnects unless stopped."""

    def on_refused(self, line: str) -> None:
        """A refusal no retry changes (a protocol the broker does not speak): the session ended."""


class DataSession:
    """One MQTT connection for the collector's data path, in its own thread."""

    def __init__(self, settings: MqttSettings, client_id: str, handler: SessionHandler, *,
                 session_expiry_s: float | None, receive_maximum: int | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.client_id = client_id
        self.handler = handler
        self.v5 = settings.protocol == "v5"
        self.session_expiry = int(session_expiry_s or 0)
        self.receive_maximum = receive_maximum
        self.keepalive = max(1, int(settings.keepalive))
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._generation = 0
        self._outgoing: list[bytes] = []  # for the current connection only
        self._to_publish: deque[tuple[str, bytes]] = deque()
        self._inflight: dict[int, bytes] = {}  # our QoS 1 publishes waiting for PUBACK
        self._send_quota = 65_535  # the broker's receive maximum
        self._next_mid = 0
        self._end_session = False
        self._reader = codec.PacketReader(v5=self.v5)
        self._woken = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="mqtt-data", daemon=True)

    # -- called from any thread -------------------------------------------------------------

    def start(self) -> None:
        """Connect (and keep reconnecting) in the session's thread."""
        self._thread.start()

    def stop(self, end_session: bool = False, timeout: float = 10.0) -> None:
        """Send what is queued, DISCONNECT (ending a v5 session when asked) and close."""
        self._end_session = end_session
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()

    def subscribe(self, filters: list[str], qos: int = 1) -> int:
        """SUBSCRIBE every filter in one packet; returns its packet id (see on_suback)."""
        with self._lock:
            mid = self._allocate_mid()
            self._outgoing.append(codec.subscribe(mid, filters, qos, v5=self.v5))
        self._wake()
        return mid

    def ack(self, mid: int, generation: int) -> None:
        """PUBACK a message received on connection ``generation`` (dropped if that ended)."""
        with self._lock:
            if generation != self._generation:
                return
            self._outgoing.append(codec.puback(mid))
        self._wake()

    def ack_many(self, mids: list[int], generation: int) -> None:
        """PUBACK several messages of one connection in one lock round."""
        if not mids:
            return
        with self._lock:
            if generation != self._generation:
                return
            self._outgoing.extend(map(codec.puback, mids))
        self._wake()

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1; kept across reconnects until the broker's PUBACK."""
        self.publish_many([(topic, payload)])

    def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish (topic, payload) pairs at QoS 1 in one lock round (a batch's agent acks)."""
        if not messages:
            return
        with self._lock:
            self._to_publish.extend(messages)
        self._wake()

    @property
    def pending_publishes(self) -> int:
        """Our publishes not yet acknowledged by the broker (queued or in flight)."""
        with self._lock:
            return len(self._to_publish) + len(self._inflight)

    def _wake(self) -> None:
        with self._lock:
            if self._woken:
                return
            self._woken = True
        with contextlib.suppress(OSError):  # closed at stop
            self._wake_w.send(b"\x00")

    def _allocate_mid(self) -> int:
        # Packet ids 1-65535, shared by SUBSCRIBE and PUBLISH; never one still in flight.
        while True:
            self._next_mid = self._next_mid % 65_535 + 1
            if self._next_mid not in self._inflight:
                return self._next_mid

    # -- the session's thread ----------------------------------------------------------------

    def _run(self) -> None:
        delay = MIN_RETRY_S
        last_error = ""
        while not self._stop.is_set():
            try:
                sock, connack, early = self._connect()
            except (OSError, codec.ProtocolError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error:  # once per kind of failure, not once per retry
                    log.warning("cannot connect to broker %s:%s: %s; retrying",
                                self.settings.host, self.settings.port, error)
                    last_error = error
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            if connack.reason != 0:
                sock.close()
                if self._refused_for_good(connack):
                    return
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            delay, last_error = MIN_RETRY_S, ""
            reason = self._serve(sock, connack, early)
            sock.close()
            self.handler.on_disconnected(reason)
            if not self._stop.is_set():
                self._stop.wait(MIN_RETRY_S)

    def _refused_for_good(self, connack: codec.ConnAck) -> bool:
        code = connack.reason
        unsupported = code in (0x84, 1)  # a 3.1.1 broker's answer to a v5 CONNECT
        line = protocol_refusal(self.settings, UNSUPPORTED_PROTOCOL) if unsupported else None
        if line is not None:
            self.handler.on_refused(line)
            return True
        name = (REFUSALS if self.v5 else V311_REFUSALS).get(code, "refused")
        detail = f": {connack.reason_string}" if connack.reason_string else ""
        log.error("broker refused the collector: %s (code 0x%02x)%s", name, code, detail)
        return False

    def _connect(self) -> tuple[socket.socket, codec.ConnAck, list[codec.Packet]]:
        s = self.settings
        sock = socket.create_connection((s.host, s.port), timeout=CONNECT_TIMEOUT_S)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if s.tls is not None:
                sock = tls_context(s).wrap_socket(sock, server_hostname=s.host)
            password = s.secret("password") if s.username else None
            sock.sendall(codec.connect(
                self.client_id, v5=self.v5, keepalive=self.keepalive,
                clean=not self.session_expiry, username=s.username, password=password,
                session_expiry=self.session_expiry if self.v5 else 0,
                receive_maximum=self.receive_maximum if self.v5 else None))
            reader = codec.PacketReader(v5=self.v5)
            deadline = self._clock() + CONNECT_TIMEOUT_S
            while True:
                sock.settimeout(max(0.1, deadline - self._clock()))
                data = sock.recv(RECV_BYTES)
                if not data:
                    raise ConnectionError("the broker closed the connection before CONNACK")
                packets = reader.feed(data)
                if packets:
                    break
            first, early = packets[0], packets[1:]
            if not isinstance(first, codec.ConnAck):
                raise codec.ProtocolError(f"expected CONNACK, got {type(first).__name__}")
            self._reader = reader
            return sock, first, early
        except BaseException:
            sock.close()
            raise

    def _serve(self, sock: socket.socket, connack: codec.ConnAck,
               early: list[codec.Packet]) -> str:
        """Exchange packets until the connection ends; returns why it ended."""
        generation, pending = self._begin(connack)
        self.handler.on_connected(generation, connack.session_present)
        sock.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        watching_writes = False
        last_in = last_out = self._clock()
        stalled_since: float | None = None  # since when the socket takes none of our bytes
        try:
            if early and (reason := self._dispatch(early, generation)):
                return reason
            while True:
                stopping = self._stop.is_set()
                pending += self._take_outgoing(stopping)
                now = self._clock()
                if now - last_out >= self.keepalive and not pending:
                    pending = codec.PINGREQ
                if stopping:
                    flush(sock, pending)
                    return "stopped"
                if now - last_in > 1.5 * self.keepalive:
                    return f"no packet from the broker for {1.5 * self.keepalive:.0f} s"
                if stalled_since is not None and now - stalled_since > 1.5 * self.keepalive:
                    return f"the broker has read nothing from us for {1.5 * self.keepalive:.0f} s"
                if pending:
                    sent = send(sock, pending)
                    if sent:
                        pending, last_out, stalled_since = pending[sent:], now, None
                    elif stalled_since is None:
                        stalled_since = now
                if watching_writes != bool(pending):  # one epoll_ctl per change, not per loop
                    watching_writes = bool(pending)
                    selector.modify(sock, selectors.EVENT_READ | (
                        selectors.EVENT_WRITE if watching_writes else 0))
                # With bytes waiting, select() wakes when the socket takes more (no spin
                # while the broker's window is shut); else at the next PINGREQ, within 1 s.
                wait = 1.0 if pending else max(0.0, min(self.keepalive - (now - last_out), 1.0))
                for key, _mask in selector.select(wait):
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                        continue
                    data = receive(sock)
                    if data is None:
                        return "the broker closed the connection"
                    if data:
                        last_in = self._clock()
                        if reason := self._dispatch(self._reader.feed(data), generation):
                            return reason
        except codec.ProtocolError as exc:
            return f"protocol error: {exc}"
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            selector.close()

    def _begin(self, connack: codec.ConnAck) -> tuple[int, bytes]:
        """A new connection's generation, and the publishes that were in flight, to resend."""
        with self._lock:
            self._generation += 1
            self._outgoing.clear()  # PUBACKs and SUBSCRIBEs of the old connection
            self._send_quota = connack.receive_maximum
            # Marked DUP when the session is resumed (3.3.1.1).
            return self._generation, b"".join(
                codec.set_dup(p) if connack.session_present else p
                for p in self._inflight.values())

    def _drain_wake(self) -> None:
        with self._lock:
            self._woken = False
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)

    def _take_outgoing(self, stopping: bool) -> bytes:
        """Everything other threads queued, and publishes the broker's quota allows."""
        with self._lock:
            out, self._outgoing = self._outgoing, []
            while self._to_publish and len(self._inflight) < self._send_quota:
                topic, payload = self._to_publish.popleft()
                mid = self._allocate_mid()
                packet = codec.publish(topic, payload, mid, v5=self.v5)
                self._inflight[mid] = packet
                out.append(packet)
        if stopping:
            end = self._end_session and bool(self.session_expiry)
            out.append(codec.disconnect(v5=self.v5, end_session=end))
        return b"".join(out)

    def _dispatch(self, packets: list[codec.Packet], generation: int) -> str:
        """Act on received packets; returns a reason when the broker ended the connection."""
        publishes = [p for p in packets if type(p) is codec.Publish]
        if publishes:
            self.handler.on_publishes(publishes, generation)
        if len(publishes) == len(packets):
            return ""
        for packet in packets:
            if isinstance(packet, codec.PubAck):
                with self._lock:
                    self._inflight.pop(packet.mid, None)
            elif isinstance(packet, codec.SubAck):
                self.handler.on_suback(packet)
            elif isinstance(packet, codec.Disconnect):
                detail = f" ({packet.reason_string})" if packet.reason_string else ""
                return f"the broker disconnected us: code 0x{packet.reason:02x}{detail}"
            elif isinstance(packet, codec.ConnAck):
                raise codec.ProtocolError("a second CONNACK")
        if any(isinstance(p, codec.PubAck) for p in packets):
            self._wake()  # room in the broker's quota: queued publishes may go
        return ""
