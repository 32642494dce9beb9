"""publish.linger end to end: a real `schoolmon agent run` process, Mosquitto, a real
`schoolmon collector run` and InfluxDB.  Every sample the agent produced is stored exactly
once, in fewer messages than probe runs, none held longer than the linger (plus the loop)."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import yaml

from common.wire import Topics, decode_envelope
from tests.conftest import (
    Services,
    influx_rows,
    schoolmon_cmd,
    start_collector_process,
    wait_until,
)
from tests.integration.delivery_peers import mqtt_client
from tests.integration.storage_scenario import collector_yaml

LINGER_S = 2.0
RUN_EVERY_S = 0.25
WHO = ("lg-d", "lg-school", "lg-gw")


class WireTap:
    """Every data message of one agent as the broker delivers it (resends included)."""

    def __init__(self, port: int, prefix: str) -> None:
        from paho.mqtt.subscribeoptions import SubscribeOptions

        self.messages = 0
        self.samples: set[tuple[str, int]] = set()  # (kind, ts_ms): unique per series here
        self.lateness_ms: list[int] = []  # per message: sent_ms - its oldest sample
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt_client(port, "tap-" + prefix.split("/", maxsplit=1)[0])
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        topic = Topics(prefix).data_filter()
        self.client.subscribe(topic, options=SubscribeOptions(qos=1))
        assert subscribed.wait(10), "tap not subscribed"

    def _on_message(self, _c: object, _u: object, msg: Any) -> None:
        env = decode_envelope(msg.payload)
        with self._lock:
            self.messages += 1
            self.samples.update((s.kind, s.ts_ms) for s in env.samples)
            self.lateness_ms.append(env.sent_ms - min(s.ts_ms for s in env.samples))

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def spool_counts(path: Path) -> tuple[int, int]:
    """Batches left and dropped_total of a spool file."""
    with sqlite3.connect(path) as db:
        depth = int(db.execute("SELECT COUNT(*) FROM batch").fetchone()[0])
        dropped = int(db.execute(
            "SELECT value FROM counter WHERE name = 'dropped_total'").fetchone()[0])
    return depth, dropped


def test_linger_stores_every_sample_once_in_fewer_messages(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path) -> None:
    """Two probes every 250 ms with a 2 s linger: each message carries several runs; after a
    clean stop (SIGTERM: the lingering batches are flushed) the spool is empty, nothing was
    dropped, and InfluxDB holds exactly the samples that crossed the wire."""
    port = services.mqtt_port
    collector = start_collector_process(collector_yaml(tmp_path, port, topic_prefix, {
        "kind": "influxdb1", "url": services.influx_url, "database": influx_db}, "lg-coll"))
    tap = WireTap(port, topic_prefix)
    spool = tmp_path / "spool.db"
    config = tmp_path / "agent.yaml"
    every = f"{int(RUN_EVERY_S * 1000)}ms"
    config.write_text(yaml.safe_dump({
        "agent": {"district": WHO[0], "school": WHO[1], "id": WHO[2], "role": "gateway"},
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": topic_prefix},
        "spool": {"path": str(spool)},
        "publish": {"linger": f"{int(LINGER_S * 1000)}ms", "ack_timeout": "10s"},
        "probes": [{"type": "host", "name": "h1", "interval": every, "jitter": 0},
                   {"type": "host", "name": "h2", "interval": every, "jitter": 0}],
    }))
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        agent = subprocess.Popen(schoolmon_cmd("agent", "run", "-c", str(config)), stderr=out)
    try:
        wait_until(lambda: len(tap.samples) >= 40 or agent.poll() is not None, 60,
                   "40 samples on the wire")
        assert agent.poll() is None, log.read_text(errors="replace")[-2000:]
        agent.terminate()
        assert agent.wait(30) == 0, log.read_text(errors="replace")[-2000:]
        depth, dropped = spool_counts(spool)
        assert (depth, dropped) == (0, 0)  # flushed and acked before the agent exited
        on_wire = set(tap.samples)
        wait_until(lambda: len(stored_host(services, influx_db))
                   + len(stored_agent(services, influx_db)) >= len(on_wire), 30,
                   "every sample stored")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
        collector.terminate()
        collector.wait(15)
        tap.close()
    host = {s for s in on_wire if s[0] == "host"}
    stored = stored_host(services, influx_db) + stored_agent(services, influx_db)
    assert len(stored) == len(set(stored)) == len(on_wire)  # one point per sample
    assert set(stored) == on_wire
    # Without a linger each host run (one sample) would be one message.
    print(f"{len(on_wire)} samples in {tap.messages} messages; "
          f"oldest sample at publish: {max(tap.lateness_ms)} ms")
    assert tap.messages * 3 <= len(host), (tap.messages, len(host))
    # Loaded CI machines run the 200 ms loop late: the linger plus a few seconds.
    assert max(tap.lateness_ms) <= LINGER_S * 1000 + 3000


def stored_host(services: Services, db: str) -> list[tuple[str, int]]:
    """(kind, time) of the agent's stored host points."""
    return stored_of(services, db, "host")


def stored_agent(services: Services, db: str) -> list[tuple[str, int]]:
    """(kind, time) of the agent's own stored ``agent`` points."""
    return stored_of(services, db, "agent")


def stored_of(services: Services, db: str, kind: str) -> list[tuple[str, int]]:
    """(kind, time) of the agent's stored points of one kind."""
    rows = influx_rows(services.influx_url, db,
                       f"SELECT * FROM \"{kind}\" WHERE agent = '{WHO[2]}'")
    return [(kind, int(str(r["time"]))) for r in rows]
