"""Moves spooled batches to the broker and deletes them when the collector acks.

paho-mqtt 2.x, MQTT v5, QoS 1, clean_start false with a session expiry, last will "offline"
(retained) on the status topic, "online" (retained) after each connect.  paho reconnects by
itself with a capped backoff; with several mqtt.servers, and when PUBACKs stop coming
(publish.puback_timeout), agent/link.py moves the agent to the next broker.  A batch is
re-published when its ack has not come within ``ack_timeout``: that is what recovers batches a
collector died holding (Mosquitto does not hand those to another member of the share group).
Each further resend of the same batch waits twice as long (up to ``resend_max``), so a slow
store is not hammered by the same batches.

A batch the collector names as ``rejected`` in an ack is one it will never accept: it leaves
the spool, counted as dropped, so it cannot block delivery.  No spool error ends the agent or
paho's network thread: callbacks log it (once until the spool works again) and carry on.

With ``publish.linger`` (agent/linger.py) a new batch waits up to the linger to go out merged
with the batches stored after it: fewer, larger messages.  A clean stop flushes what lingers.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from typing import Any

from agent.config import AgentConfig
from agent.delivery import MonotonicMs, monotonic_ms
from agent.linger import coalesce
from agent.link import BrokerLink, ClientFactory
from agent.probes.base import WallClockMs, wall_clock_ms
from agent.spool import Spool, SpoolWriteError
from common.mqtt import make_client
from common.wire import Topics, WireError, decode_ack, wrap_envelope

log = logging.getLogger(__name__)

# What a spool call can raise: disk full or read-only, the file gone, the spool closed.
SPOOL_ERRORS = (SpoolWriteError, sqlite3.Error, RuntimeError, OSError)


def resend_wait_ms(attempts: int, ack_timeout_ms: int, cap_ms: int) -> int:
    """How long a batch sent ``attempts`` times waits for its ack: timeout x 2^(n-1), capped."""
    return min(ack_timeout_ms << min(max(attempts - 1, 0), 32), max(cap_ms, ack_timeout_ms))


class Publisher:
    """Delivers the spool over MQTT; call ``pump`` often (it never blocks on the network)."""

    def __init__(self, config: AgentConfig, spool: Spool,
                 clock_ms: WallClockMs = wall_clock_ms) -> None:
        self.config = config
        self.spool = spool
        self.clock_ms = clock_ms
        self.topics = Topics(config.mqtt.topic_prefix)
        self.who = config.identity
        self.connected = threading.Event()
        self.acked_batches = 0
        self.published_batches = 0
        self.rejected_batches = 0
        self.linger_ms = int(config.linger_s * 1000)
        self._client: Any = None
        self._link: BrokerLink | None = None
        self._spool_failing = False
        self._acked = threading.Event()  # set by each ack: flush waits on it, not in a sleep

    def start(self, factory: ClientFactory = make_client,
              mono_ms: MonotonicMs = monotonic_ms) -> None:
        """Begin connecting in the background (``factory``/``mono_ms``: a test's network)."""
        cfg = self.config
        self._link = BrokerLink(
            cfg.mqtt, cfg.mqtt.server_list(), cfg.agent.id, prepare=self._prepare,
            on_up=self._on_connect, on_down=self._on_disconnect, on_message=self._on_message,
            puback_timeout_s=cfg.publish.puback_timeout,
            backoff_s=(cfg.publish.reconnect_min, cfg.publish.reconnect_max),
            session_expiry_s=cfg.mqtt.session_expiry, factory=factory, mono_ms=mono_ms)
        self._link.start()

    def _prepare(self, client: Any) -> None:
        """Set up a new paho client (one per broker switch) before it connects."""
        cfg = self.config
        client.will_set(self.topics.status(self.who), b"offline", qos=1, retain=True)
        client.reconnect_delay_set(
            min_delay=max(1, int(cfg.publish.reconnect_min)),
            max_delay=max(1, int(cfg.publish.reconnect_max)),
        )
        client.max_inflight_messages_set(cfg.publish.max_inflight)

    @property
    def link(self) -> BrokerLink | None:
        """The connection ``start`` opened (None with ``use_client`` or before start)."""
        return self._link

    def use_client(self, client: Any) -> None:
        """Publish through an already connected client (a bench's or a test's transport)."""
        self._client = client
        self.connected.set()

    def _publish(self, topic: str, payload: bytes, retain: bool = False) -> Any:
        """QoS 1 through the link (watched for its PUBACK) or the client given to use_client."""
        if self._link is not None:
            return self._link.publish(topic, payload, qos=1, retain=retain)
        return self._client.publish(topic, payload, qos=1)

    def stop(self, timeout: float = 5.0) -> None:
        """Say "offline" (retained) and disconnect."""
        if self._link is None and self._client is None:
            return
        if self.connected.is_set():
            info = self._publish(self.topics.status(self.who), b"offline", retain=True)
            # Not delivered in time: the broker publishes the last will instead.
            with contextlib.suppress(RuntimeError, ValueError, AttributeError):
                info.wait_for_publish(timeout)
        if self._link is not None:
            self._link.stop()
        else:
            self._client.disconnect()
            self._client.loop_stop()
        self._link = self._client = None
        self.connected.clear()

    def _on_connect(self, client: Any) -> None:
        client.subscribe(self.topics.ack(self.who), qos=1)
        self._publish(self.topics.status(self.who), b"online", retain=True)
        # Whatever was in flight before the break may be lost with the broker: send again.
        with self._spool_call("mark_unsent"):
            self.spool.mark_unsent()
        self.connected.set()

    def _on_disconnect(self, reason: Any) -> None:
        if self.connected.is_set() and reason is not None:
            log.warning("disconnected from broker: %s; will reconnect", reason)
        self.connected.clear()

    @contextlib.contextmanager
    def _spool_call(self, what: str) -> Any:
        """Run a spool call; an error is logged (once until the spool works again), not raised:
        raised in paho's thread it would end the network loop, in pump the agent."""
        try:
            yield
        except SPOOL_ERRORS as exc:
            if not self._spool_failing:
                log.error("spool %s failed (will retry; logged once): %s", what, exc)
            self._spool_failing = True
        else:
            if self._spool_failing:
                log.warning("spool works again (%s)", what)
            self._spool_failing = False

    def _on_message(self, _client: Any, _userdata: object, msg: Any) -> None:
        try:
            ack = decode_ack(msg.payload)
        except WireError as exc:
            log.warning("ignored a malformed ack: %s", exc)
            return
        if ack.acked:
            with self._spool_call("ack"):
                self.acked_batches += self.spool.ack(ack.acked)
            self._acked.set()
        for seq, cause in ack.rejected:
            with self._spool_call("reject"):
                samples = self.spool.reject([seq])
                self.rejected_batches += 1
                log.error("collector rejected batch %d (%d samples) for good: %s; dropped",
                          seq, samples, cause)

    def resend_wait_ms(self, attempts: int) -> int:
        """The wait for the ack of a batch sent ``attempts`` times (capped exponential)."""
        cfg = self.config.publish
        return resend_wait_ms(attempts, int(cfg.ack_timeout * 1000), int(cfg.resend_max * 1000))

    def pump(self, *, flush: bool = False) -> int:
        """Publish due batches (new, or not acked in time); returns how many went out.

        With a linger, fresh batches wait for it and go out merged; ``flush``: none waits."""
        if self._link is not None:
            self._link.maintain()  # a stalled or lost broker: the next one (agent/link.py)
        if (self._link is None and self._client is None) or not self.connected.is_set():
            return 0
        now = self.clock_ms()
        timeout_ms = int(self.config.publish.ack_timeout * 1000)

        def extra_wait(attempts: int) -> int:
            return self.resend_wait_ms(attempts) - timeout_ms

        sent: list[int] = []
        with self._spool_call("read"):
            room = (self.config.publish.max_inflight
                    - self.spool.in_flight(now - timeout_ms, extra_wait))
            ready = None
            if self.linger_ms > 0 and room > 0:
                ready = coalesce(self.spool, self.linger_ms, flush=flush, max_groups=room)
            batches = self.spool.due(room, now - timeout_ms, extra_wait, ready=ready)
            topic = self.topics.data(self.who)
            for batch in batches:
                payload = wrap_envelope(self.who, batch.seq, now, batch.payload)
                info = self._publish(topic, payload)
                if info is None or info.rc != 0:  # not connected any more; the batch stays due
                    break
                sent.append(batch.seq)
            if sent:
                self.spool.mark_sent(sent, now)
                self.published_batches += len(sent)
        return len(sent)

    def flush(self, timeout: float) -> bool:
        """On a clean stop: publish what lingers now, then wait up to ``timeout`` for the acks
        of what is in flight (so the next start need not send it again).  True when nothing
        is left lingering or unacknowledged; what is left stays in the spool either way."""
        with self._spool_call("flush"):
            if self.linger_ms <= 0 or not self.spool.fresh():
                return True  # nothing lingers: stop as without a linger
        deadline = time.monotonic() + timeout
        timeout_ms = int(self.config.publish.ack_timeout * 1000)
        while self.connected.is_set():
            self._acked.clear()
            self.pump(flush=True)
            with self._spool_call("flush"):
                if not self.spool.fresh() and self.spool.in_flight(
                        self.clock_ms() - timeout_ms) == 0:
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._acked.wait(min(left, 0.2))
        return False
