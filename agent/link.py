"""The agent's connection: which broker of ``mqtt.servers`` it uses, and the PUBACK watchdog.

Several servers (a broker cluster's nodes): on a lost connection the agent moves to the next
server at once; after a failed connect (or a refused one) it moves on after a back-off of
publish.reconnect_min, doubling up to reconnect_max, until a connect succeeds.  One line is
logged per switch, naming the server.  With one server paho reconnects by itself, as before.

The watchdog: while connected, when the oldest QoS 1 PUBLISH has had no PUBACK for
publish.puback_timeout (and no other PUBACK came meanwhile), the connection is dropped and a
new one opened (to the next server when there are several); so is a connection whose CONNACK
has not come within that time.  That is a node that keeps the TCP connection and answers
PINGREQ (so keepalive sees nothing) but stores nothing: a NATS node whose JetStream lost quorum
times out storing each PUBLISH and loading the session on CONNECT; a stopped process.  paho's
in-flight window stays full, or the CONNACK never comes, and nothing more leaves the agent.
It only unblocks the connection: at-least-once stays with the spool, which resends every
batch not acked by a collector on each connect (Publisher._on_connect: mark_unsent).

Why a new paho client per switch: paho 2.2 refuses ``client.host = ...`` unless the
connection is fully closed, and in on_disconnect after a lost connection (state still
CONNECTED) and in on_connect_fail (state CONNECTING) it is not: the setter raises
RuntimeError (tried).  ``connect_async`` on a live client closes the socket under its network
thread.  So a switch retires the client (its callbacks cut, its un-acked messages dropped:
the spool has them, then disconnect and loop_stop, joined in a daemon thread because a
DISCONNECT that cannot be written waits for paho's keepalive) and connects a fresh one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from agent.delivery import MonotonicMs, monotonic_ms
from common.config import MqttSettings
from common.mqtt import connect_async, make_client

log = logging.getLogger(__name__)

ClientFactory = Callable[[MqttSettings, str], Any]
Server = tuple[str, int]


def backoff_ms(failures: int, min_ms: int, max_ms: int) -> int:
    """The wait before leaving a server after ``failures`` failed connects in a row."""
    return min(min_ms << min(max(failures - 1, 0), 32), max(max_ms, min_ms))


class BrokerLink:
    """One paho client at a time, to one of ``servers``; ``maintain`` from the agent's loop."""

    def __init__(self, settings: MqttSettings, servers: list[Server], client_id: str, *,
                 prepare: Callable[[Any], None], on_up: Callable[[Any], None],
                 on_down: Callable[[Any], None],
                 on_message: Callable[[Any, object, Any], None],
                 puback_timeout_s: float, backoff_s: tuple[float, float],
                 session_expiry_s: float | None, factory: ClientFactory = make_client,
                 mono_ms: MonotonicMs = monotonic_ms) -> None:
        self.settings = settings
        self.servers = servers
        self.client_id = client_id
        self.client: Any = None
        self.switches = 0
        self._prepare, self._on_up, self._on_down = prepare, on_up, on_down
        self._on_message = on_message
        self._puback_ms = int(puback_timeout_s * 1000)
        self._backoff = (int(backoff_s[0] * 1000), int(backoff_s[1] * 1000))
        self._session_expiry_s = session_expiry_s
        self._factory = factory
        self._mono_ms = mono_ms
        self._index = 0
        self._lock = threading.Lock()  # paho's thread and the agent's loop share what follows
        self._unacked: deque[tuple[Any, int]] = deque()  # (MQTTMessageInfo, published at)
        self._connected_at: int | None = None
        self._progress_at = 0  # when maintain last saw a PUBACK
        self._connecting_since: int | None = None  # no CONNACK yet
        self._failures = 0
        self._switch_at: int | None = None  # set by paho's thread: leave the server then
        self._why = ""

    @property
    def server(self) -> Server:
        """The server the current client connects to."""
        return self.servers[self._index]

    def where(self) -> str:
        """'host:port' of the current server (IPv6 in brackets)."""
        host, port = self.server
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> None:
        """Connect to the first server (in paho's thread: this does not block)."""
        self._connect()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> Any:
        """Publish on the current client; a QoS 1 message is watched until its PUBACK."""
        client = self.client
        if client is None:
            return None
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if qos > 0 and info.rc == 0:
            with self._lock:
                self._unacked.append((info, self._mono_ms()))
        return info

    def maintain(self) -> bool:
        """Switch servers when due (watchdog, lost or failed connection); True on a switch.

        Called from the agent's loop, never from paho's thread (it builds a client)."""
        now = self._mono_ms()
        with self._lock:
            why = self._stalled(now)
            if not why and self._switch_at is not None and now >= self._switch_at:
                why = self._why
        if not why:
            return False
        self._switch(why)
        return True

    def stop(self) -> Any:
        """Stop for good; returns the last client (already disconnected) or None."""
        client, self.client = self.client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        return client

    def _stalled(self, now: int) -> str:
        """Why the connection is stalled ('' when it is not); the lock is held."""
        if self._connected_at is None:
            # A node that takes the TCP connection but cannot load the session answers no
            # CONNACK (NATS without JetStream quorum); paho would wait for its keepalive.
            since = self._connecting_since
            if since is None or now - since < self._puback_ms:
                return ""
            return f"no CONNACK from {self.where()} for {self._puback_ms / 1000:g}s"
        while self._unacked and self._unacked[0][0].is_published():
            self._unacked.popleft()
            self._progress_at = now
        if not self._unacked:
            return ""
        # Timed from the latest of: its publish, this connection (what was published before
        # was resent when it came up), the last PUBACK seen: on a slow uplink a backlog's
        # messages queue behind each other in paho's window, and a broker that acks one every
        # few seconds is working, however long the last of them has waited.
        since = max(self._unacked[0][1], self._connected_at, self._progress_at)
        if now - since < self._puback_ms:
            return ""
        return f"no PUBACK from {self.where()} for {self._puback_ms / 1000:g}s"

    def _switch(self, why: str) -> None:
        old, self.client = self.client, None
        with self._lock:
            self._unacked.clear()
            self._connected_at = self._connecting_since = None
            self._switch_at = None
        if old is not None:
            self._retire(old)
            self._on_down(None)
        if len(self.servers) > 1:
            self._index = (self._index + 1) % len(self.servers)
        self.switches += 1
        log.warning("%s; connecting to %s", why, self.where())
        self._connect()

    def _retire(self, client: Any) -> None:
        client.on_connect = client.on_disconnect = client.on_connect_fail = None
        client.on_pre_connect = None
        client.on_message = None
        client.drop_out_messages()  # the spool resends them; paho must not wait for them
        client.disconnect()
        threading.Thread(target=client.loop_stop, name="mqtt-retire", daemon=True).start()

    def _connect(self) -> None:
        host, port = self.server
        client = self._factory(self.settings, self.client_id)
        self._prepare(client)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_connect_fail = self._connect_failed
        client.on_message = self._on_message
        client.on_pre_connect = self._connecting
        self.client = client
        connect_async(client, self.settings.model_copy(update={"host": host, "port": port}),
                      session_expiry_s=self._session_expiry_s)

    def _connected(self, client: Any, _userdata: object, _flags: object, reason: Any,
                   _props: object) -> None:
        if client is not self.client:
            return
        if reason.is_failure:
            log.error("broker %s refused the connection: %s", self.where(), reason)
            self._failed(f"{self.where()} refused the connection")
            return
        with self._lock:
            self._connected_at = self._mono_ms()
            self._connecting_since = None
            self._failures = 0
            self._switch_at = None
        log.info("connected to %s", self.where())
        self._on_up(client)

    def _disconnected(self, client: Any, _userdata: object, _flags: object, reason: Any,
                      _props: object) -> None:
        if client is not self.client:
            return
        with self._lock:
            was_up, self._connected_at = self._connected_at is not None, None
            self._connecting_since = None  # until paho's next attempt (on_pre_connect)
            if was_up and len(self.servers) > 1:
                self._switch_at, self._why = self._mono_ms(), f"lost {self.where()} ({reason})"
        if was_up:
            self._on_down(reason)
        else:  # closed before its CONNACK: a failed connect
            self._failed(f"{self.where()} closed the connection before its CONNACK")

    def _connecting(self, client: Any, _userdata: object) -> None:
        """paho opens a connection (the first or one of its own retries): the CONNACK's wait."""
        if client is self.client:
            with self._lock:
                self._connecting_since = self._mono_ms()

    def _connect_failed(self, client: Any, _userdata: object) -> None:
        if client is self.client:
            with self._lock:
                self._connecting_since = None  # no TCP connection: nothing to wait for
            self._failed(f"cannot connect to {self.where()}")

    def _failed(self, why: str) -> None:
        """A connect failed: with several servers, leave this one after the back-off."""
        if len(self.servers) < 2:
            return  # paho retries its one server with its own back-off
        with self._lock:
            self._failures += 1
            if self._switch_at is None:
                self._switch_at = self._mono_ms() + backoff_ms(self._failures, *self._backoff)
                self._why = why
