"""A standby per shard: an MQTT retained lease with a last will, and the alert state handed over.

Two collectors with the same ``standby.shard`` (and topic prefix) form a pair. Each keeps a
second, small MQTT connection whose last will clears the retained lease topic
``{prefix}/_collector/lease/{shard}``. The one holding the lease (its client id is the retained
value) runs rules and alerts; the other waits. When the active dies, the broker publishes its
will: at once when the socket closes (SIGKILL, OOM kill), after 1.5 x keepalive when its host
or link dies. The standby sees the lease empty and takes it.

Why a lease on the broker: both collectors already depend on it (no new service to run, to
cluster, or to reach through a school firewall), the will is the broker's own failure detector,
and retained messages reach every subscriber in one order, which is what settles a race:
a candidate publishes its id and holds the lease only if, ``settle`` seconds after its own id
came back, no other id came after it; both candidates see the same last value, so both agree.
An active that loses the lease connection, or sees another id, stops (exit 1, for its
supervisor to restart it as standby): it can no longer know it is alone, and sending alerts
twice is worse than a gap of one restart.

The alert state (collector/alerts/state.py, SQLite: alerts, groups and outbox) is what says
which mails went out. The active publishes it after every alert tick that changed it, retained
at ``{prefix}/_collector/alerts/{shard}`` (SQL text, zlib); the standby installs the latest copy
as its state file before its alert engine starts. Like Alertmanager's gossiped notification log:
a mail the active sent is not sent again. Only a mail accepted by the SMTP server in the
milliseconds between the tick's commit and this publish can go out twice (at least once, as any
SMTP client). The rules state is rebuilt from InfluxDB on takeover (collector/rules/restore.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from collector.config import CollectorConfig
from common.mqtt import connect_async, make_client

log = logging.getLogger(__name__)


class Lease:
    """This collector's side of its shard's lease (see the module docstring)."""

    def __init__(self, config: CollectorConfig, *, settle: float) -> None:
        mqtt = config.mqtt
        prefix = mqtt.topic_prefix.strip("/")
        shard = config.standby.shard
        self.me = mqtt.effective_client_id()
        self.topic = f"{prefix}/_collector/lease/{shard}"
        self.alerts_topic = f"{prefix}/_collector/alerts/{shard}"
        self.settle = settle
        self.held = threading.Event()
        self.lost = threading.Event()  # held, then the lease connection or the lease was lost
        self._cond = threading.Condition()
        self._holder: str | None = None  # None: no retained value seen
        self._messages = 0  # lease messages seen, to tell "nothing came after mine"
        self._subscribed_at: float | None = None
        self._snapshot = b""  # the latest alert state seen (compressed SQL), b"": none
        self._published_digest = b""
        self._mqtt = mqtt
        # Two connections: this one watches (no will: a standby's death must not clear the
        # active's lease); the active one, made only to take the lease, carries the will.
        client = make_client(mqtt, client_id=f"{self.me}-watch")
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client = client
        self._active: Any = None

    def start(self) -> None:
        """Connect and watch the lease (paho's thread)."""
        connect_async(self._client, self._mqtt, session_expiry_s=0)

    def _on_connect(self, client: Any, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            log.error("broker refused the lease connection: %s", reason)
            return
        client.subscribe([(self.topic, 1), (self.alerts_topic, 1)])

    def _on_subscribe(self, _c: Any, _u: object, _mid: int, _r: Any, _p: object) -> None:
        with self._cond:
            self._subscribed_at = time.monotonic()
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: object, _f: object, _r: Any, _p: object) -> None:
        with self._cond:
            self._subscribed_at = None
            self._holder = None
            self._cond.notify_all()

    def _on_active_disconnect(self, _c: Any, _u: object, _f: object, reason: Any,
                              _p: object) -> None:
        # The broker has published (or will publish) our will: the lease is no longer ours.
        if self.held.is_set() and not self.lost.is_set():
            log.error("standby: lease connection lost (%s): stopping rules and alerts here; "
                      "the standby takes over", reason)
            self.lost.set()

    def _on_message(self, _c: Any, _u: object, msg: Any) -> None:
        if msg.topic == self.alerts_topic:
            with self._cond:
                self._snapshot = bytes(msg.payload)
            return
        holder = msg.payload.decode("utf-8", "replace")
        with self._cond:
            self._holder = holder
            self._messages += 1
            if self.held.is_set() and holder != self.me:
                log.error("standby: lease taken by %r: stopping rules and alerts here", holder)
                self.lost.set()
            self._cond.notify_all()

    def _empty(self) -> bool:
        # Retained values come right after the SUBACK: none by ``settle`` later means none.
        if self._subscribed_at is None:
            return False
        if self._holder is None:
            return time.monotonic() - self._subscribed_at >= self.settle
        return self._holder == ""

    def acquire(self, stop: threading.Event) -> bool:
        """Wait until this collector holds the lease (True) or ``stop`` is set (False)."""
        logged = False
        while not stop.is_set():
            with self._cond:
                if not self._empty():
                    if not logged and self._holder:
                        log.info("standby: shard %s is held by %s; waiting",
                                 self.topic.rsplit("/", 1)[-1], self._holder)
                        logged = True
                    self._cond.wait(min(self.settle, 1.0))
                    continue
            if self._try_take(stop):
                return True
            logged = False
        return False

    def _connect_active(self, stop: threading.Event) -> bool:
        """The connection whose last will clears the lease: made before the lease is taken."""
        if self._active is not None:
            return True
        connected = threading.Event()
        client = make_client(self._mqtt, client_id=f"{self.me}-lease")
        client.will_set(self.topic, b"", qos=1, retain=True)
        client.on_connect = lambda *_a: connected.set()
        client.on_disconnect = self._on_active_disconnect
        connect_async(client, self._mqtt, session_expiry_s=0)
        while not connected.wait(0.1):
            if stop.is_set():
                client.loop_stop()
                return False
        self._active = client
        return True

    def _try_take(self, stop: threading.Event) -> bool:
        if not self._connect_active(stop):
            return False
        self._active.publish(self.topic, self.me.encode(), qos=1, retain=True)
        deadline = time.monotonic() + max(5.0, 5 * self.settle)
        with self._cond:
            while self._holder != self.me:  # our own id back from the broker
                if stop.is_set() or time.monotonic() > deadline:
                    return False
                self._cond.wait(0.05)
            seen = self._messages
            settle_end = time.monotonic() + self.settle
            while time.monotonic() < settle_end and not stop.is_set():
                self._cond.wait(settle_end - time.monotonic())
            if self._messages != seen or self._holder != self.me or stop.is_set():
                return False  # another candidate's id came after ours: it holds the lease
            self.held.set()
        log.info("standby: lease %s taken: this collector (%s) is active", self.topic, self.me)
        return True

    def release(self) -> None:
        """A clean stop: clear the lease (a DISCONNECT does not send the will) and leave."""
        active, self._active = self._active, None
        if active is not None:
            active.on_disconnect = None
            if self.held.is_set() and not self.lost.is_set():
                active.publish(self.topic, b"", qos=1, retain=True).wait_for_publish(5)
            self.held.clear()
            active.disconnect()
            active.loop_stop()
        self._client.disconnect()
        self._client.loop_stop()

    # --- the alert state, handed from the active to the standby -----------------------------

    def publish_alert_state(self, state_path: str | Path) -> None:
        """The active, after an alert tick: publish the state file if it changed."""
        src = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True)
        try:
            sql = "\n".join(src.iterdump()).encode("utf-8")
        finally:
            src.close()
        digest = hashlib.sha256(sql).digest()
        if digest == self._published_digest:
            return
        info = self._active.publish(self.alerts_topic, zlib.compress(sql), qos=1, retain=True)
        info.wait_for_publish(10)
        if info.is_published():
            self._published_digest = digest

    def install_alert_state(self, state_path: str | Path) -> bool:
        """The new active, before its alert engine opens the file: the last active's state."""
        with self._cond:
            snapshot = self._snapshot
        if not snapshot:
            return False
        path = Path(state_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".takeover")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.executescript(zlib.decompress(snapshot).decode("utf-8"))
        finally:
            db.close()
        for stale in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        os.replace(tmp, path)
        log.info("standby: alert state of the last active installed (%d bytes)", len(snapshot))
        return True
