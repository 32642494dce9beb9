"""One collector's own ingest ceiling: drain a broker queue filled before it starts.

Publishers running beside the collector share its two cores and bound what it can show (they
did: 713 messages/s for a bare subscriber).  Here the messages wait first: a Mosquitto of this
bench (queues unbounded) keeps two persistent sessions subscribed to the data topics, one for
the collector (in its share group), one for the bare paho subscriber (the floor issue 11 names)
and one for a bare subscriber on the collector's own MQTT session (collector/mqtt_session.py:
the floor of the collector's stack); publishers fill the three queues with the same messages
and stop.  Then each subscriber connects alone, resumes its session and drains it; the rate is
messages (and samples) from its connection until the last one is stored (collector) or acked
(bare subscribers).

Agent acks: the collector acks each agent once per write batch (a range of seqs); with
thousands of agents a write batch holds about one message per agent, so it sends about one
agent ack per message, and the bare subscriber sends exactly one per message (QoS 1, the seq
read with orjson) besides its PUBACK: nothing else.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from common.mqtt import share_property_tables
from common.wire import AgentIdentity, Sample, Topics, encode_ack, encode_samples, wrap_envelope

PREFIX = "drain/v1"
AGENTS = 6000  # distinct agents: a write batch holds about one message of each
COLLECTOR_ID = "drain-collector"
FLOOR_ID = "drain-floor"
SESSION_FLOOR_ID = "drain-session-floor"
SESSION_S = 3600


@dataclass(frozen=True)
class Drain:
    """What one subscriber did with a full queue."""

    messages: int
    samples: int
    seconds: float
    stored: int = 0  # samples InfluxDB holds afterwards (collector only)
    cpu_seconds: float = 0.0  # the collector's user + system CPU time while draining

    @property
    def cores(self) -> float:
        """How many cores the collector kept busy on average (1.0: one core, the GIL's bound)."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def messages_per_s(self) -> float:
        """Messages drained per second."""
        return self.messages / self.seconds

    @property
    def samples_per_s(self) -> float:
        """Samples drained per second."""
        return self.samples / self.seconds


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(d: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A Mosquitto whose queues hold the whole fill (no persistence: no autosave of them)."""
    port = free_port()
    conf = d / "drain-mosquitto.conf"
    conf.write_text(f"per_listener_settings false\nlistener {port} 127.0.0.1\n"
                    "allow_anonymous true\nmax_queued_messages 0\nmax_queued_bytes 0\n"
                    # Mosquitto's in-flight window towards MQTT 3.1.1 clients (v5: theirs).
                    "max_inflight_messages 1000\n"
                    f"log_dest file {d / 'drain-mosquitto.log'}\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("the drain bench's Mosquitto did not start")


def _client(client_id: str, protocol: str, *, persistent: bool) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    if protocol == "v311":
        return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                           protocol=MQTTProtocolVersion.MQTTv311,
                           clean_session=not persistent)
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=MQTTProtocolVersion.MQTTv5)


def _connect(client: Any, port: int, protocol: str, receive_maximum: int = 1000) -> None:
    if protocol == "v311":
        client.connect("127.0.0.1", port)
        return
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_S
    props.ReceiveMaximum = receive_maximum
    client.connect("127.0.0.1", port, clean_start=False, properties=props)


def prepare_session(port: int, client_id: str, topic_filter: str, protocol: str) -> None:
    """A persistent session subscribed to ``topic_filter``, left offline to collect messages."""
    client = _client(client_id, protocol, persistent=True)
    acked = mp.Event()
    client.on_subscribe = lambda *_a: acked.set()
    _connect(client, port, protocol)
    client.loop_start()
    client.subscribe(topic_filter, qos=1)
    if not acked.wait(30):
        raise RuntimeError(f"no SUBACK for {client_id}")
    client.disconnect()
    client.loop_stop()


def samples_in(m: int, small: bool) -> int:
    """Samples of message ``m``: 1-5 (3 on average) as classrooms send, or a gateway's 50."""
    return 1 + m % 5 if small else 50


def _fill(port: int, index: int, count: int, small: bool, ts0: int) -> None:
    """Publish messages ``index``, ``index + step``...: QoS 1, as fast as the broker takes them."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"drain-fill{index}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    topics = Topics(PREFIX)
    info = None
    for m in range(index, count, 2):
        agent = m % AGENTS
        who = AgentIdentity("d", f"s{agent // 30}", f"a{agent}")
        seq = m // AGENTS
        size = samples_in(m, small)
        samples = [Sample("iface", ts0 + seq * 1000 + k, {"iface": f"eth{k % 4}", "role": "wan"},
                          {"rx_bps": 81234567.5 + k, "tx_bps": 1234567.0, "link_mbps": 1000,
                           "up": True, "errors": 0, "drops": 0}) for k in range(size)]
        payload = wrap_envelope(who, seq, int(time.time() * 1000), encode_samples(samples))
        info = client.publish(topics.data(who), payload, qos=1)
    if info is not None:
        info.wait_for_publish(600)
    client.disconnect()
    client.loop_stop()


def fill(port: int, count: int, small: bool, ts0: int) -> int:
    """Fill the waiting sessions with ``count`` messages (two publisher processes); samples."""
    procs = [mp.Process(target=_fill, args=(port, i, count, small, ts0)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(900)
    return sum(samples_in(m, small) for m in range(count))


def _floor(port: int, expected: int, protocol: str, out: Any) -> None:
    """The bare subscriber: PUBACK and one agent ack per message, nothing else."""
    share_property_tables()  # the same paho as the collector's (common/mqtt.py)
    client = _client(FLOOR_ID, protocol, persistent=True)
    got = 0
    begun = 0.0
    done = mp.Event()
    last: list[Any] = []

    def on_connect(*_a: object) -> None:
        nonlocal begun
        begun = time.perf_counter()

    def on_message(c: Any, _u: object, msg: Any) -> None:
        nonlocal got
        seq = orjson.loads(msg.payload)["seq"]
        info = c.publish(msg.topic[:-4] + "ack", encode_ack([(seq, seq)]), qos=1)
        got += 1
        if got == expected:
            last.append(info)
            out.put(time.perf_counter() - begun)
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message  # paho sends the PUBACK when it returns
    client.max_queued_messages_set(0)
    _connect(client, port, protocol)
    client.loop_start()
    done.wait(900)
    if last:
        last[0].wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


class _AckEverything:
    """The bare subscriber on the collector's own MQTT session: PUBACK and one agent ack."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.got = 0
        self.session: Any = None
        self.done = mp.Event()
        self.begun = 0.0
        self.seconds = 0.0

    def on_connected(self, _generation: int, _session_present: bool) -> None:
        self.begun = time.perf_counter()

    def on_publishes(self, publishes: list[Any], generation: int) -> None:
        for msg in publishes:
            seq = orjson.loads(msg.payload)["seq"]
            self.session.publish(msg.topic[:-4] + "ack", encode_ack([(seq, seq)]))
        self.session.ack_many([m.mid for m in publishes], generation)
        self.got += len(publishes)
        if self.got >= self.expected and not self.done.is_set():
            self.seconds = time.perf_counter() - self.begun
            self.done.set()

    def on_suback(self, _suback: object) -> None:
        return

    def on_disconnected(self, _reason: str) -> None:
        return

    def on_refused(self, line: str) -> None:
        raise RuntimeError(line)


def _session_floor(port: int, expected: int, protocol: str, out: Any) -> None:
    from collector.mqtt_session import DataSession
    from common.config import MqttSettings

    handler = _AckEverything(expected)
    settings = MqttSettings(host="127.0.0.1", port=port, protocol=protocol)  # type: ignore[arg-type]
    session = DataSession(settings, SESSION_FLOOR_ID, handler, session_expiry_s=SESSION_S,
                          receive_maximum=1000)
    handler.session = session
    session.start()
    handler.done.wait(900)
    out.put(handler.seconds)
    session.stop()


def drain_floor(port: int, messages: int, samples: int, protocol: str = "v5",
                stack: str = "paho") -> Drain:
    """Time a bare subscriber's drain of its session: paho, or the collector's own session."""
    out: Any = mp.Queue()
    proc = mp.Process(target=_floor if stack == "paho" else _session_floor,
                      args=(port, messages, protocol, out))
    proc.start()
    seconds = float(out.get(timeout=900))
    proc.join(60)
    return Drain(messages, samples, seconds)


def collector_yaml(d: Path, port: int, influx_url: str, db: str, *, protocol: str,
                   write: dict[str, object] | None = None) -> Path:
    """The drained collector's config: its session outlives the connection (resumed here)."""
    path = d / f"drain-{db}-{protocol}.yaml"
    path.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port, "username": None, "topic_prefix": PREFIX,
                 "client_id": COLLECTOR_ID, "protocol": protocol, "session_expiry": "1h"},
        "storage": {"kind": "influxdb1", "url": influx_url, "database": db},
        # No collector_stats points: the end of a drain is read from InfluxDB's write counter.
        "write": {"batch_points": 5000, "flush_interval": "200ms", "stats_interval": "0s",
                  **(write or {})},
        # The fill waited in the queue: its age is not a wrong clock.
        "clocks": {"tolerance": "1h"},
    }))
    return path


def drain_collector(d: Path, port: int, influx_url: str, db: str, *, messages: int,
                    samples: int, protocol: str = "v5", write: dict[str, object] | None = None,
                    profile: str | None = None) -> Drain:
    """Start ``schoolmon collector run`` on the filled session; time it until all is stored."""
    from bench.collector_throughput import create_db, points_written, wait_stored

    create_db(influx_url, db)
    base = points_written(influx_url)
    log = d / f"drain-{db}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "schoolmon", "collector", "run", "-c",
                                 str(collector_yaml(d, port, influx_url, db, protocol=protocol,
                                                    write=write))],
                                stderr=err)
    spy = None
    try:
        while b"collector connected" not in log.read_bytes():
            if proc.poll() is not None:
                raise RuntimeError(f"collector exited: {log.read_text()[-2000:]}")
            time.sleep(0.01)
        begun = time.perf_counter()
        cpu_begun = _cpu_seconds(proc.pid)
        if profile:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                                    str(proc.pid), "-t", "-f", "raw", "-o", profile, "-r",
                                    "200"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds, stored = wait_stored(influx_url, db, samples, begun, base)
        # Idle since the last point (up to 20 s of polling): adds nothing to its CPU time.
        cpu = _cpu_seconds(proc.pid) - cpu_begun
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if keep := os.environ.get("BENCH_KEEP_LOG"):
            Path(keep).write_bytes(log.read_bytes())
    return Drain(messages, samples, seconds, stored, cpu)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain_both(d: Path, influx_url: str, messages: int, *, small: bool, db: str,
               protocol: str = "v5", floor: bool = True,
               write: dict[str, object] | None = None,
               profile: str | None = None) -> tuple[Drain | None, Drain, Drain | None]:
    """Fill the queues of the collector and both floors with the same messages; drain each.

    Returns (bare paho floor, collector, bare subscriber on the collector's own session).
    """
    broker, port = start_broker(d)
    try:
        topics = Topics(PREFIX)
        floors = [FLOOR_ID, SESSION_FLOOR_ID] if floor else []
        for client_id, group in ((COLLECTOR_ID, "collectors"), *((f, f) for f in floors)):
            prepare_session(port, client_id, topics.data_filter(share_group=group)
                            if protocol == "v5" else topics.data_filter(), protocol)
        begun = time.perf_counter()
        samples = fill(port, messages, small, int(time.time() * 1000))
        print(f"  filled {messages:,} messages ({samples:,} samples) in "
              f"{time.perf_counter() - begun:.1f} s", flush=True)
        # The collector first: its samples are then under a minute old, live data, not a
        # backlog (which would add collector/late.py's journal points to every write).
        coll = drain_collector(d, port, influx_url, db, messages=messages, samples=samples,
                               protocol=protocol, write=write, profile=profile)
        if not floor:
            return None, coll, None
        paho_floor = drain_floor(port, messages, samples, protocol)
        session_floor = drain_floor(port, messages, samples, protocol, stack="session")
        return paho_floor, coll, session_floor
    finally:
        broker.terminate()
        broker.wait(20)


def main() -> int:
    """A quick look: small messages, v5 and 3.1.1 (no docs written; see collector_throughput)."""
    import tempfile

    from bench.collector_throughput import ROOT

    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
    protocols = sys.argv[2].split(",") if len(sys.argv) > 2 else ["v5"]
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        d = Path(tmp)
        out = subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "start",
                              str(d / "svc"), "influxdb"], capture_output=True, text=True,
                             check=True)
        env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        try:
            for protocol in protocols:
                floor, coll, own = drain_both(d, env["INFLUXDB_URL"], messages, small=True,
                                              db=f"small_{protocol}", protocol=protocol)
                assert floor is not None and own is not None
                print(f"{protocol}: paho floor {floor.messages_per_s:,.0f} msg/s, session floor "
                      f"{own.messages_per_s:,.0f} msg/s, collector ({coll.cores:.2f} cores) "
                      f"{coll.messages_per_s:,.0f} msg/s, stored {coll.stored} of "
                      f"{coll.samples}", flush=True)
        finally:
            subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "stop",
                            str(d / "svc")], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
