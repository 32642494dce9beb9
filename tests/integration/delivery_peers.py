"""Test peers for the collector's delivery side: a raw publisher, an ack listener, configs."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import yaml

from common.wire import AgentIdentity, Envelope, Sample, decode_ack, encode_envelope


def mqtt_client(port: int, client_id: str) -> Any:
    """A connected paho v5 client with its network thread running."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


class AckListener:
    """Records every ack the collectors publish under a prefix: when each seq was acked or
    rejected, per agent (the agent id is the topic's, i.e. whom the ack was addressed to)."""

    def __init__(self, port: int, prefix: str) -> None:
        from paho.mqtt.subscribeoptions import SubscribeOptions

        self.acked: dict[tuple[str, int], float] = {}
        self.rejected: dict[tuple[str, int], str] = {}
        self.acks_by_agent: dict[str, int] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt_client(port, f"acks-{prefix.split('/', maxsplit=1)[0]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.subscribe(f"{prefix}/+/+/+/ack", options=SubscribeOptions(qos=1))
        assert self._subscribed.wait(10), "ack listener not subscribed"

    def _on_message(self, _c: object, _u: object, msg: Any) -> None:
        now = time.monotonic()
        agent = msg.topic.split("/")[-2]
        ack = decode_ack(msg.payload)
        with self._lock:
            self.acks_by_agent[agent] = self.acks_by_agent.get(agent, 0) + 1
            for first, last in ack.acked:
                for seq in range(first, last + 1):
                    self.acked.setdefault((agent, seq), now)
            for seq, cause in ack.rejected:
                self.rejected[(agent, seq)] = cause

    def count_acked(self, keys: list[tuple[str, int]]) -> int:
        """How many of ``keys`` have been acked."""
        with self._lock:
            return sum(1 for k in keys if k in self.acked)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class RawPublisher:
    """Publishes envelopes straight to the broker (QoS 1) and notes when each went out."""

    def __init__(self, port: int, client_id: str) -> None:
        self.client = mqtt_client(port, client_id)
        self.sent_at: dict[tuple[str, int], float] = {}

    def publish(self, topic: str, payload: bytes, key: tuple[str, int] | None = None) -> None:
        """Publish and wait for the broker's PUBACK."""
        if key is not None:
            self.sent_at[key] = time.monotonic()
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def host_envelope(who: AgentIdentity, seq: int, ts_ms: int) -> bytes:
    """A one-sample batch (``host`` with uptime_s = seq, so each is its own point)."""
    return encode_envelope(Envelope(who.district, who.school, who.agent, seq, ts_ms,
                                    [Sample("host", ts_ms, {}, {"uptime_s": seq})]))


def write_collector_yaml(path: Path, port: int, prefix: str, *, influx_url: str, db: str,
                         client_id: str, **mqtt: Any) -> Path:
    """A collector.yaml for `schoolmon collector run` on the test broker."""
    path.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix, "username": None,
                 "client_id": client_id, **mqtt},
        "storage": {"kind": "influxdb1", "url": influx_url, "database": db},
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s"},
    }))
    return path
