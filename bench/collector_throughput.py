"""Collector throughput and latency through real Mosquitto and InfluxDB 1.x.

1. Ceiling: pre-built 5,000-point line-protocol batches POSTed straight to InfluxDB.
2. One collector process: publisher processes blast envelopes of 50 samples; samples/s from the
   first publish until InfluxDB holds every point.  Then two collectors on the shared
   subscription: throughput, and a check that no point is stored twice (count == sent).
3. A collector's own ceiling (bench/ingest_drain.py): the broker's queue filled first, then
   drained by the collector alone and by a bare paho subscriber (the floor of the same stack):
   small messages on MQTT v5 and 3.1.1, and 50-sample envelopes against the ceiling.
4. Latency: 10,000 simulated schools each reporting once a minute (167 msg/s) for a while;
   publish -> agent ack (the ack is sent only after InfluxDB stored the batch): p50, p99.
Writes docs/benchmarks.md.  Run: .venv/bin/python -m bench.collector_throughput
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import yaml

from bench.report import machine, write_section
from common.wire import (
    AgentIdentity,
    Envelope,
    Sample,
    Topics,
    decode_ack,
    encode_envelope,
    encode_samples,
    wrap_envelope,
)

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "bench/v1"
SAMPLES_PER_MESSAGE = 50


def services(d: Path) -> dict[str, str]:
    """Start Mosquitto and InfluxDB; their env."""
    out = subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "start", str(d),
                          "mosquitto", "influxdb"], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def query(url: str, db: str, q: str) -> list[list[object]]:
    """Values of the first series of an InfluxQL query."""
    qs = urllib.parse.urlencode({"db": db, "q": q})
    with urllib.request.urlopen(f"{url}/query?{qs}", timeout=30) as resp:
        result = orjson.loads(resp.read())["results"][0]
    series = result.get("series") or [{"values": []}]
    values: list[list[object]] = series[0]["values"]
    return values


def create_db(url: str, db: str) -> None:
    """CREATE DATABASE."""
    data = urllib.parse.urlencode({"q": f"CREATE DATABASE {db}"}).encode()
    urllib.request.urlopen(f"{url}/query", data=data, timeout=30).read()


def count(url: str, db: str) -> int:
    """Points in measurement iface."""
    values = query(url, db, "SELECT COUNT(rx_bps) FROM iface")
    return int(values[0][1]) if values else 0  # type: ignore[call-overload]


def wait_subscribed(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the collector confirmed its subscription; its log's end if it exited instead."""
    while b"subscribed" not in log.read_bytes():
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def points_written(url: str) -> int:
    """Points InfluxDB has taken in write requests since it started (``SHOW STATS``).

    Under a millisecond to ask, where ``SELECT COUNT`` reads every stored point (217 ms for
    200,000 here): polled every 200 ms during a run, the count itself took InfluxDB a large
    part of a core from the collector it was measuring.
    """
    rows = query(url, "_internal", "SHOW STATS FOR 'write'")
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def wait_stored(url: str, db: str, expected: int, begun: float, base: int, *,
                give_up_s: float = 900) -> tuple[float, int]:
    """(seconds from ``begun`` until ``expected`` points were written, points stored).

    Watches InfluxDB's write counter (cheap) until it has taken ``expected`` more points
    than ``base`` (its value before the run), or nothing for 20 s, then counts the stored
    points exactly (and keeps counting while they are short of ``expected`` and growing).
    """
    last_change, last_seen = time.perf_counter(), base
    while last_seen - base < expected and time.perf_counter() - last_change < 20:
        time.sleep(0.05)
        seen = points_written(url)
        if seen != last_seen:
            last_change, last_seen = time.perf_counter(), seen
        if time.perf_counter() - begun > give_up_s:
            break
    stored = count(url, db)
    while stored < expected and time.perf_counter() - last_change < 20:
        time.sleep(0.5)
        now_stored = count(url, db)
        if now_stored != stored:
            last_change, stored = time.perf_counter(), now_stored
    return last_change - begun, stored


def ceiling(url: str, points: int) -> float:
    """Points/s of direct batched writes (the InfluxDB ceiling on this machine).

    The very lines the collector writes for this bench's envelopes (its validate() of them,
    untimed): the same six fields per point and one series per agent and interface, so the
    ratio compares like with like (a three-field point costs InfluxDB ~15 % less).
    """
    from collector.validate import Accepted, validate

    create_db(url, "ceiling")
    topics = Topics(PREFIX)
    ts0 = recent_ms()
    lines: list[str] = []
    n = 0
    while len(lines) < points:
        who = AgentIdentity("d", f"s{n % 6000 // 30}", f"a{n % 6000}")
        result = validate(topics, topics.data(who), envelope(who, n // 6000,
                                                             ts0 + (n // 6000) * 1000))
        assert isinstance(result, Accepted), result
        lines.extend(result.lines)
        n += 1
    batches = ["\n".join(lines[i:i + 5000]).encode() for i in range(0, points, 5000)]
    begun = time.perf_counter()
    for body in batches:
        req = urllib.request.Request(f"{url}/write?db=ceiling&precision=ms", data=body)
        urllib.request.urlopen(req, timeout=60).read()
    return points / (time.perf_counter() - begun)


def batch(ts: int, size: int = SAMPLES_PER_MESSAGE) -> list[Sample]:
    """``size`` realistic iface samples (50: a gateway's batch; 1-5: a classroom's)."""
    return [Sample("iface", ts + k, {"iface": f"eth{k % 4}", "role": "wan"},
                      {"rx_bps": 81234567.5 + k, "tx_bps": 1234567.0, "link_mbps": 1000,
                       "up": True, "errors": 0, "drops": 0})
               for k in range(size)]


def envelope(who: AgentIdentity, seq: int, ts: int, size: int = SAMPLES_PER_MESSAGE) -> bytes:
    """One envelope sent now (sent_ms is the real clock: the collector corrects agents whose
    sent_ms is off, so an envelope built long before it is sent would look like a slow clock).
    """
    return encode_envelope(Envelope(who.district, who.school, who.agent, seq,
                                    int(time.time() * 1000), batch(ts, size)))


WINDOW = 400  # batches a publisher may have un-acked, as agents have max_inflight
SMALL_MESSAGES = 40_000  # drained: envelopes of 1-5 samples
BIG_MESSAGES = 6_000  # drained: envelopes of 50 samples (300,000 samples)


def small_row(rate: float, floor: float, stored: int, sent: int, load_avg: str) -> str:
    """The small-message row of docs/benchmarks.md (bench/capacity_table.py reads it)."""
    return (f"| 1 collector process, small messages (1-5 samples, {SMALL_MESSAGES:,} envelopes "
            f"drained from a filled queue) | {rate:,.0f} messages/s ({rate / floor:.0%} of the "
            f"bare paho subscriber); stored {stored:,} of {sent:,} samples; load average "
            f"{load_avg} |")


def big_row(rate: float, ref: float, stored: int, sent: int, load_avg: str) -> str:
    """The 50-sample drain row (issue 11 part 4; bench/capacity_table.py reads it)."""
    return (f"| 1 collector process, 50-sample envelopes ({BIG_MESSAGES:,} drained from a filled "
            f"queue) | {rate:,.0f} samples/s ({rate / ref:.0%} of the ceiling beside the "
            f"drains); stored {stored:,} of {sent:,}; load average {load_avg} |")


def recent_ms() -> int:
    """A start time inside the collector's accepted window (an hour ago)."""
    return int(time.time() * 1000) - 3_600_000


def publisher(port: int, index: int, messages: int, ts0: int, *, protocol: str = "v5") -> None:
    """Publish ``messages`` envelopes as 100 agents, QoS 1, as fast as the collector acks.

    Like real agents, a publisher keeps at most WINDOW batches waiting for the collector's ack;
    without that, a flood overflows Mosquitto's per-client queue and the broker drops messages
    (agents would resend them; this bench does not).
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    # Larger windows overflow Mosquitto's queue for the subscriber (1,000).
    window = threading.Semaphore(WINDOW)

    def on_ack(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        ack = decode_ack(bytes(msg.payload))
        for first, last in ack.acked:
            for _ in range(first, last + 1):
                window.release()
        for _ in ack.rejected:  # counted as not stored; the window must not stall on them
            window.release()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub{index}",
                         protocol=MQTTProtocolVersion.MQTTv5 if protocol == "v5"
                         else MQTTProtocolVersion.MQTTv311)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.on_message = on_ack
    subscribed = threading.Semaphore(0)
    client.on_subscribe = lambda *_a: subscribed.release()
    client.connect("127.0.0.1", port)
    for k in range(100):  # only this publisher's own agents' acks
        client.subscribe(f"{PREFIX}/d/s{index}-{k}/a{index}-{k}/ack", qos=1)
    client.loop_start()
    # An ack sent before the broker set up the subscription is lost (a NATS cluster takes
    # seconds to create 100 replicated consumers); these publishers do not resend.
    for _ in range(100):
        subscribed.acquire(timeout=60)
    topics = Topics(PREFIX)
    payloads = []
    for m in range(messages):
        who = AgentIdentity("d", f"s{index}-{m % 100}", f"a{index}-{m % 100}")
        # 100 messages apart, an agent's samples are 1 s apart in time: unique per series,
        # and 10,000 messages stay inside the collector's window of an hour ago.
        payloads.append((topics.data(who), who, m, encode_samples(batch(ts0 + m * 1000))))
    info = None
    for topic, who, seq, samples_json in payloads:
        window.acquire()
        # Stamped when sent, as agents do (spooled samples, envelope made at send time).
        payload = wrap_envelope(who, seq, int(time.time() * 1000), samples_json)
        info = client.publish(topic, payload, qos=1)
    if info is not None:
        info.wait_for_publish(300)
    client.disconnect()
    client.loop_stop()


def collector_yaml(d: Path, env: dict[str, str], db: str, name: str, *,
                   port: int | None = None, protocol: str = "v5") -> Path:
    """A collector config for the bench (Mosquitto unless another port and protocol)."""
    path = d / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": port or int(env["MQTT_PORT"]), "username": None,
                 "topic_prefix": PREFIX, "client_id": name, "protocol": protocol,
                 **({"session_expiry": "1h"} if protocol == "v311" else {})},
        "storage": {"kind": "influxdb1", "url": env["INFLUXDB_URL"], "database": db},
        # No collector_stats points: the end of a run is read from InfluxDB's write counter.
        "write": {"batch_points": 5000, "flush_interval": "200ms", "stats_interval": "0s"},
    }))
    return path


def throughput(d: Path, env: dict[str, str], collectors: int, messages: int, *,
               publishers: int = 2, give_up_s: float = 120.0) -> tuple[float, int, int]:
    """(samples/s, points stored, samples sent) through ``collectors`` processes."""
    db = f"thr{collectors}"
    create_db(env["INFLUXDB_URL"], db)
    procs = []
    for i in range(collectors):
        log = d / f"c{collectors}-{i}.log"
        with log.open("wb") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "schoolmon", "collector",
                                           "run", "-c", str(collector_yaml(
                                               d, env, db, f"c{collectors}-{i}"))],
                                          stderr=out))
        wait_subscribed(procs[-1], log)
    sent = messages * SAMPLES_PER_MESSAGE
    base = points_written(env["INFLUXDB_URL"])
    begun = time.perf_counter()
    pubs = [mp.Process(target=publisher, args=(int(env["MQTT_PORT"]), p,
                                               messages // publishers, recent_ms()))
            for p in range(publishers)]
    for p in pubs:
        p.start()
    elapsed, stored = wait_stored(env["INFLUXDB_URL"], db, sent, begun, base, give_up_s=give_up_s)
    # Samples/s over the time they took to land (a stall does not count against the rate).
    for p in pubs:
        # Publishers without a resend wait forever for acks of messages the broker lost.
        p.join(5)
        if p.is_alive():
            p.terminate()
    time.sleep(2)  # late duplicates, if any, would show up now
    stored = count(env["INFLUXDB_URL"], db)
    for proc in procs:
        proc.terminate()
        proc.wait(10)
    return sent / elapsed, stored, sent


def latency(d: Path, env: dict[str, str], schools: int, seconds: float) -> tuple[float, float]:
    """p50, p99 ms from publish to the agent ack, schools reporting every 60 s."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    db = "latency"
    create_db(env["INFLUXDB_URL"], db)
    log = d / "lat.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "schoolmon", "collector", "run", "-c",
                                 str(collector_yaml(d, env, db, "lat"))], stderr=out)
    wait_subscribed(proc, log)
    sent_at: dict[tuple[str, int], float] = {}
    delays: list[float] = []
    lock = threading.Lock()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        agent = msg.topic.split("/")[-2]
        for first, last in decode_ack(bytes(msg.payload)).acked:
            for seq in range(first, last + 1):
                with lock:
                    t = sent_at.pop((agent, seq), None)
                if t is not None:
                    delays.append((now - t) * 1000)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lat-pub",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.max_queued_messages_set(0)
    client.on_message = on_message
    client.connect("127.0.0.1", int(env["MQTT_PORT"]))
    client.subscribe(f"{PREFIX}/+/+/+/ack", qos=1)
    client.loop_start()
    topics = Topics(PREFIX)
    rate = schools / 60.0
    begun = time.perf_counter()
    ts0 = recent_ms()
    n = 0
    while time.perf_counter() - begun < seconds:
        due = int((time.perf_counter() - begun) * rate)
        while n < due:
            who = AgentIdentity("d", f"s{n % schools}", f"a{n % schools}")
            payload = envelope(who, n, ts0 + n)
            with lock:
                sent_at[(who.agent, n)] = time.perf_counter()
            client.publish(topics.data(who), payload, qos=1)
            n += 1
        time.sleep(0.005)
    time.sleep(3)
    client.disconnect()
    client.loop_stop()
    proc.terminate()
    proc.wait(10)
    q = statistics.quantiles(delays, n=100)
    return q[49], q[98]


def load() -> str:
    """The 1-minute load average now."""
    return Path("/proc/loadavg").read_text().split()[0]


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values)  # idle + iowait


def settle(quiet_share: float = 0.85, give_up_s: float = 120.0) -> float:
    """Wait until the machine is quiet for a second; the seconds waited.

    InfluxDB compacts what the earlier parts wrote (a million points) for a minute or more
    after them: measured beside that, a drain would count another part's work against the
    collector, and differently from run to run.
    """
    begun = time.monotonic()
    idle, total = _cpu_times()
    while time.monotonic() - begun < give_up_s:
        time.sleep(1.0)
        idle2, total2 = _cpu_times()
        share = (idle2 - idle) / max(1, total2 - total)
        idle, total = idle2, total2
        if share >= quiet_share:
            break
    return time.monotonic() - begun


def drain_rows(d: Path) -> list[str]:
    """The filled-queue runs (bench/ingest_drain.py): small messages on v5 and 3.1.1, 50-sample.

    On an InfluxDB of their own, fresh, whose ceiling is measured first: the 50-sample drain
    is compared with what the same InfluxDB takes in the same state, not with a ceiling
    measured before the other parts wrote a million points into it.
    """
    env = services(d / "svc-drain")
    try:
        settle()
        ref = ceiling(env["INFLUXDB_URL"], 200_000)
        print(f"ceiling beside the drains (a fresh InfluxDB): {ref:,.0f} points/s", flush=True)
        rows = [f"| InfluxDB ceiling beside the drained rows (a fresh InfluxDB of their own) | "
                f"{ref:,.0f} points/s |"]
        return rows + _drains(d, env, ref)
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "stop",
                        str(d / "svc-drain")], check=False)


def _drains(d: Path, env: dict[str, str], ref: float) -> list[str]:
    from bench.ingest_drain import drain_both

    rows = []
    for protocol in ("v5", "v311"):
        # BENCH_PYSPY=out.txt: a py-spy profile of the collector's v5 drain (where time goes).
        profile = os.environ.get("BENCH_PYSPY") if protocol == "v5" else None
        settle()
        floor, coll, own = drain_both(d, env["INFLUXDB_URL"], SMALL_MESSAGES, small=True,
                                      db=f"drain_{protocol}", protocol=protocol,
                                      profile=profile)
        assert floor is not None and own is not None
        now = load()
        print(f"small messages, {protocol}, drained: bare paho floor "
              f"{floor.messages_per_s:,.0f} msg/s, bare session floor "
              f"{own.messages_per_s:,.0f} msg/s, collector {coll.messages_per_s:,.0f} msg/s "
              f"({coll.messages_per_s / floor.messages_per_s:.0%} of the paho floor), stored "
              f"{coll.stored} of {coll.samples}, load {now}", flush=True)
        name = "MQTT v5" if protocol == "v5" else "MQTT 3.1.1"
        rows.append(f"| bare paho subscriber, {name}, small messages drained (PUBACK + one "
                    f"agent ack per message) | {floor.messages_per_s:,.0f} messages/s; load "
                    f"average {now} |")
        rows.append(f"| bare subscriber on the collector's MQTT session "
                    f"(collector/mqtt_session.py), {name}, the same drain | "
                    f"{own.messages_per_s:,.0f} messages/s |")
        row = small_row(coll.messages_per_s, floor.messages_per_s, coll.stored, coll.samples,
                        now)
        # The v5 row is the collector's default connection: the one the capacity table reads.
        rows.append(row if protocol == "v5" else row.replace(
            "| 1 collector process, small", "| 1 collector process on MQTT 3.1.1, small"))
    settle()
    _, big, _ = drain_both(d, env["INFLUXDB_URL"], BIG_MESSAGES, small=False, db="drain_big",
                           floor=False)
    now = load()
    print(f"50-sample envelopes, drained: {big.samples_per_s:,.0f} samples/s "
          f"({big.samples_per_s / ref:.0%} of the ceiling), stored {big.stored} of "
          f"{big.samples}, load {now}", flush=True)
    rows.append(big_row(big.samples_per_s, ref, big.stored, big.samples, now))
    return rows


def main() -> int:
    """Run all three parts, print and record."""
    with tempfile.TemporaryDirectory(prefix="bench-coll-") as tmp:
        d = Path(tmp)
        env = services(d / "svc")
        try:
            ref = ceiling(env["INFLUXDB_URL"], 200_000)
            print(f"ceiling (direct batched writes): {ref:,.0f} points/s", flush=True)
            runs: dict[int, tuple[float, int, int]] = {}
            loads: dict[int, str] = {}
            for n in (1, 2, 3):
                runs[n] = throughput(d, env, n, 4000)
                rate, stored, sent = runs[n]
                loads[n] = load()
                print(f"{n} collector(s): {rate:,.0f} samples/s ({rate / ref:.0%} of ceiling, "
                      f"{rate / runs[1][0]:.2f}x of 1), stored {stored} of {sent}, "
                      f"load {loads[n]}", flush=True)
            drains = drain_rows(d)
            p50, p99 = latency(d, env, 10_000, 30)
            print(f"latency publish -> stored -> ack, 10,000 schools / 60 s: p50 {p50:.0f} ms, "
                  f"p99 {p99:.0f} ms", flush=True)
        finally:
            subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "stop",
                            str(d / "svc")], check=False)
    write_section("collector_throughput", "\n".join([
        "## Collector throughput (`bench/collector_throughput.py`)", "",
        "Real Mosquitto and InfluxDB 1.6.7 on this machine, sharing its cores with the "
        "collector(s) and two publisher processes. Envelopes of 50 `iface` samples, QoS 1, from "
        "200 agents; samples/s from the first publish until InfluxDB holds every point. The "
        "ceiling is the same points as the collector writes them (six fields, tags sorted), in "
        "5,000-point batches POSTed straight to the same InfluxDB in the same run. The end "
        "of a run is read from InfluxDB's write counter (`SHOW STATS`), the stored points "
        "are counted once after it. "
        "The drained rows (`bench/ingest_drain.py`) measure a collector alone, on an InfluxDB "
        "of their own (fresh, its ceiling measured first), each after the machine went quiet "
        "(InfluxDB compacts what the other parts wrote for a minute or more): a Mosquitto "
        "of the bench (queues unbounded) holds the messages of 6,000 agents in the collector's "
        "persistent session and in the bare subscriber's, publishers fill both and stop, then "
        "each drains its own; messages/s from its connection until the last sample is stored "
        "(collector) or acked (bare subscriber: PUBACK and one agent ack per message, as the "
        "collector sends with thousands of agents: a write batch holds about one message of "
        "each).", "",
        f"Measured {machine()}.", "",
        "| what | figure |", "|---|---|",
        f"| InfluxDB ceiling (direct batched writes) | {ref:,.0f} points/s |",
        *[f"| {n} collector process{'es, shared subscription' if n > 1 else ''} | "
          f"{rate:,.0f} samples/s ({rate / ref:.0%} of the ceiling, {rate / runs[1][0]:.2f}x "
          f"of 1 collector); stored {stored:,} of {sent:,}"
          + (" (each sample once)" if stored == sent else " (NOT every sample once)")
          + f"; load average {loads[n]} |"
          for n, (rate, stored, sent) in runs.items()],
        *drains,
        f"| publish -> stored -> agent ack, 10,000 schools every 60 s (167 msg/s, 30 s) "
        f"| p50 {p50:.0f} ms, p99 {p99:.0f} ms |",
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
