"""Moves spooled batches to the broker and deletes them when the collector acks.

paho-mqtt 2.x, MQTT v5, QoS 1, clean_start false with a session expiry, last will "offline"
(retained) on the status topic, "online" (retained) after each connect.  paho reconnects by
itself with a capped backoff.  A batch is re-published when its ack has not come within
``ack_timeout``: that is what recovers batches a collector died holding (Mosquitto does not
hand those to another member of the share group).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from agent.config import AgentConfig
from agent.probes.base import WallClockMs, wall_clock_ms
from agent.spool import Spool
from common.mqtt import connect_async, make_client
from common.wire import Topics, WireError, decode_ack, wrap_envelope

log = logging.getLogger(__name__)


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
        self._client: Any = None

    def start(self) -> None:
        """Begin connecting in the background."""
        cfg = self.config
        client = make_client(cfg.mqtt, client_id=cfg.agent.id)
        client.will_set(self.topics.status(self.who), b"offline", qos=1, retain=True)
        client.reconnect_delay_set(
            min_delay=max(1, int(cfg.publish.reconnect_min)),
            max_delay=max(1, int(cfg.publish.reconnect_max)),
        )
        client.max_inflight_messages_set(cfg.publish.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        connect_async(client, cfg.mqtt, session_expiry_s=cfg.mqtt.session_expiry)

    def stop(self, timeout: float = 5.0) -> None:
        """Say "offline" (retained) and disconnect."""
        client = self._client
        if client is None:
            return
        if self.connected.is_set():
            info = client.publish(self.topics.status(self.who), b"offline", qos=1, retain=True)
            # Not delivered in time: the broker publishes the last will instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        client.disconnect()
        client.loop_stop()
        self._client = None

    def _on_connect(self, client: Any, _userdata: object, _flags: object, reason: Any,
                    _props: object) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the connection: %s",
                      self.config.mqtt.host, self.config.mqtt.port, reason)
            return
        log.info("connected to %s:%s", self.config.mqtt.host, self.config.mqtt.port)
        client.subscribe(self.topics.ack(self.who), qos=1)
        client.publish(self.topics.status(self.who), b"online", qos=1, retain=True)
        # Whatever was in flight before the break may be lost with the broker: send again.
        self.spool.mark_unsent()
        self.connected.set()

    def _on_disconnect(self, _client: Any, _userdata: object, _flags: object, reason: Any,
                       _props: object) -> None:
        if self.connected.is_set():
            log.warning("disconnected from broker: %s; will reconnect", reason)
        self.connected.clear()

    def _on_message(self, _client: Any, _userdata: object, msg: Any) -> None:
        try:
            ranges = decode_ack(msg.payload).acked
        except WireError as exc:
            log.warning("ignored a malformed ack: %s", exc)
            return
        self.acked_batches += self.spool.ack(ranges)

    def pump(self) -> int:
        """Publish due batches (new, or not acked in time); returns how many went out."""
        client = self._client
        if client is None or not self.connected.is_set():
            return 0
        now = self.clock_ms()
        timeout_ms = int(self.config.publish.ack_timeout * 1000)
        room = self.config.publish.max_inflight - self.spool.in_flight(now - timeout_ms)
        batches = self.spool.due(room, now - timeout_ms)
        sent = []
        topic = self.topics.data(self.who)
        for batch in batches:
            payload = wrap_envelope(self.who, batch.seq, now, batch.payload)
            info = client.publish(topic, payload, qos=1)
            if info.rc != 0:  # not connected any more; the batch stays due
                break
            sent.append(batch.seq)
        if sent:
            self.spool.mark_sent(sent, now)
            self.published_batches += len(sent)
        return len(sent)
