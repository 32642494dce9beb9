"""Publishing virtual agents' envelopes through the real broker, as many agents on one connection.

Each virtual agent has its own seq and topics; the collector's acks (``.../ack``) are followed
like an agent follows them, so the simulator can bound what is in flight (Mosquitto drops QoS 1
messages beyond a client's queue) and knows when everything it sent is stored.  Envelopes not
acknowledged within ``resend_after`` seconds are sent again, as a real agent would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.config import MqttSettings
from common.mqtt import connect_async, make_client
from common.wire import (
    AgentIdentity,
    Envelope,
    Sample,
    Topics,
    WireError,
    decode_ack,
    encode_envelope,
)

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    topic: str
    payload: bytes
    sent: float
    samples: int


@dataclass(frozen=True)
class PublishStats:
    """What was sent and acknowledged."""

    envelopes: int
    samples: int
    acked_envelopes: int
    resent: int


class SimPublisher:
    """One MQTT connection publishing for every virtual agent."""

    def __init__(self, settings: MqttSettings, client_id: str, *, window: int = 500,
                 resend_after: float = 30.0, stall_timeout: float = 300.0,
                 wall_ms: Callable[[], int] | None = None) -> None:
        self.settings, self.client_id = settings, client_id
        self.topics = Topics(settings.topic_prefix)
        self.window, self.resend_after = window, resend_after
        self.stall_timeout = stall_timeout
        self._progress = time.monotonic()  # last ack (or start)
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._seq: dict[AgentIdentity, int] = {}
        self._pending: dict[tuple[AgentIdentity, int], _Pending] = {}
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._failure: str | None = None
        self._client: Any = None
        self.envelopes = self.samples = self.acked = self.resent = 0

    def start(self, timeout: float = 15.0) -> None:
        """Connect, subscribe to the acks; raises ConnectionError when the broker is not there."""
        client = make_client(self.settings, self.client_id)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = lambda *_a: self._ready.set()
        client.on_connect_fail = lambda *_a: self._fail("connection failed")
        self._client = client
        connect_async(client, self.settings, session_expiry_s=None)
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05) and self._failure is None:
            if time.monotonic() > deadline:
                self._failure = f"no answer within {timeout:.0f} s"
        if self._failure is not None:
            self.stop()
            raise ConnectionError(f"no MQTT connection to {self.settings.host}:"
                                  f"{self.settings.port}: {self._failure}")

    def _fail(self, why: str) -> None:
        # A command run fails fast on a wrong host, port or password instead of retrying.
        self._failure = why

    def stop(self) -> None:
        """Disconnect."""
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def _on_connect(self, client: Any, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            self._fail(f"refused: {reason}")
            return
        from paho.mqtt.subscribeoptions import SubscribeOptions

        client.subscribe(f"{self.topics.prefix}/+/+/+/ack", options=SubscribeOptions(qos=1))

    def _on_message(self, _c: Any, _u: object, msg: Any) -> None:
        try:
            who, leaf = self.topics.parse(msg.topic)
            ranges = decode_ack(msg.payload).acked if leaf == "ack" else []
        except WireError:
            return
        with self._cond:
            self._progress = time.monotonic()
            for first, last in ranges:
                for seq in range(first, last + 1):
                    if self._pending.pop((who, seq), None) is not None:
                        self.acked += 1
            self._cond.notify_all()

    def status(self, who: AgentIdentity, status: str) -> None:
        """Publish an agent's retained status ("online" / "offline", as its last will would)."""
        self._client.publish(self.topics.status(who), status.encode(), qos=1, retain=True)

    def publish(self, who: AgentIdentity, samples: list[Sample]) -> None:
        """Publish one envelope for ``who``, waiting while ``window`` envelopes are unacked.

        An agent's first envelope is preceded by its retained "online", as a real agent's
        connection is.  Announcing thousands of agents at once instead would flood the
        collector's queue at the broker (Mosquitto drops QoS 1 messages beyond it).
        """
        if who not in self._seq:
            self.status(who, "online")
        seq = self._seq.get(who, 0) + 1
        self._seq[who] = seq
        payload = encode_envelope(Envelope(who.district, who.school, who.agent, seq,
                                           self._wall_ms(), samples))
        topic = self.topics.data(who)
        with self._cond:
            while len(self._pending) >= self.window:
                if not self._cond.wait(timeout=1.0):
                    self._resend_stale()
                    if time.monotonic() - self._progress > self.stall_timeout:
                        raise TimeoutError(
                            f"no acknowledgement from a collector for {self.stall_timeout:.0f} s"
                            f" (is one running for this broker and topic prefix "
                            f"{self.topics.prefix!r}?)")
            self._pending[(who, seq)] = _Pending(topic, payload, time.monotonic(), len(samples))
            self.envelopes += 1
            self.samples += len(samples)
        self._client.publish(topic, payload, qos=1)

    def _resend_stale(self) -> None:
        """Send again what waited longer than ``resend_after`` (caller holds the lock)."""
        now = time.monotonic()
        stale = [p for p in self._pending.values() if now - p.sent > self.resend_after]
        if stale:
            log.warning("simulate: %d envelopes not acknowledged after %.0f s: sending again",
                        len(stale), self.resend_after)
        for pending in stale:
            pending.sent = now
            self.resent += 1
            self._client.publish(pending.topic, pending.payload, qos=1)

    def wait_acked(self, timeout: float) -> bool:
        """Wait until the collector acknowledged every envelope; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if not self._cond.wait(timeout=min(left, 1.0)):
                    self._resend_stale()
            return True

    def stats(self) -> PublishStats:
        """Counts so far."""
        with self._cond:
            return PublishStats(self.envelopes, self.samples, self.acked, self.resent)
