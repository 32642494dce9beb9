"""A satellite-like uplink: a day of backlog drains at 256 kbit/s with 600 ms each way.

The agent of a school that was cut off for a day comes back over a slow, long link.  Its spool is
pre-filled with a day of a gateway's real batches (bench/gateway_day.py: the probes' own samples,
one batch per probe run, as the scheduler spools them).  `schoolmon agent run` in the client
namespace reaches Mosquitto through tests/peers/delay_proxy.py (600 ms added to every chunk in
each direction), whose upstream crosses a veth pair shaped by ``tc tbf`` to 256 kbit/s both ways;
broker, collector and InfluxDB are in the server namespace.  The test measures how long the
backlog takes to land in InfluxDB and the bytes per sample on the wire, and checks the drain
time against what the link's capacity allows for those bytes.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.gateway_day import DAY_S, day_counts, fill_spool
from bench.netlab import ShapedLink, available
from common.wire import AgentIdentity, Topics, wrap_envelope
from tests.conftest import wait_until
from tests.integration.netns_stack import BROKER_PORT, NsStack

# Long fault scenarios: `make test-faults` (README), run by CI beside `make test`.
pytestmark = [pytest.mark.integration, pytest.mark.faults]

RATE_BIT_S = 256_000
DELAY_S = 0.6
PROXY_PORT = 18830
WHO = AgentIdentity("sat", "sat-school", "sat-gw")
# Ethernet + IPv4 + TCP with timestamps per full 1448-byte segment, plus ACK-only packets.
HEADER_OVERHEAD = 1.06
MAX_INFLIGHT = 200  # batches un-acked at once: must cover the link's bandwidth x ack round trip


def shape(link: ShapedLink) -> None:
    """256 kbit/s both ways with a modem-like queue: small burst, 500 ms of buffer."""
    for ns, dev in ((link.server_ns, link._veth[0]), (link.client_ns, link._veth[1])):
        subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root",
                        "tbf", "rate", f"{RATE_BIT_S // 1000}kbit", "burst", "4000",
                        "latency", "500ms"], check=True, capture_output=True)


def link_bytes(link: ShapedLink) -> tuple[int, int]:
    """(sent, received) bytes of the client end of the veth, headers included."""
    out = subprocess.run(["ip", "-n", link.client_ns, "-j", "-s", "link", "show", "dev",
                          link._veth[1]], capture_output=True, check=True, text=True).stdout
    stats = json.loads(out)[0]["stats64"]
    return int(stats["tx"]["bytes"]), int(stats["rx"]["bytes"])


def publish_bytes(spool: Path, topic: str, sent_ms: int) -> int:
    """What publishing every spooled batch once costs in MQTT v5 PUBLISH packets (QoS 1)."""
    total = 0
    with contextlib.closing(sqlite3.connect(spool)) as db:
        for seq, payload in db.execute("SELECT seq, payload FROM batch"):
            body = len(wrap_envelope(WHO, seq, sent_ms, payload))
            # topic length + topic, packet id, properties length (0), payload
            remaining = 2 + len(topic.encode()) + 2 + 1 + body
            total += 1 + (1 if remaining < 128 else 2 if remaining < 16384 else 3) + remaining
    return total


def depth(spool: Path) -> int:
    """Batches still in the spool."""
    with contextlib.closing(sqlite3.connect(spool, timeout=5)) as db:
        return int(db.execute("SELECT COUNT(*) FROM batch").fetchone()[0])


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[NsStack]:
    """Broker, InfluxDB and collector behind a 256 kbit/s link."""
    reason = available()
    assert reason is None, reason
    with ShapedLink(RATE_BIT_S / 1e6) as link:
        shape(link)
        ns = NsStack(link, tmp_path)
        try:
            ns.start_broker()
            ns.start_influxdb()
            ns.start_collector()
            yield ns
        finally:
            ns.close()


@pytest.mark.timeout(1200)
def test_day_of_backlog_drains_over_satellite_link(stack: NsStack,
                                                   record_property: pytest.RecordProperty) -> None:
    """Every sample of a day lands once; the drain takes no more than the bytes need (x 1.5)."""
    spool = stack.tmp / "spool.db"
    now_ms = int(time.time() * 1000)
    day_start_ms = now_ms - DAY_S * 1000 - 120_000
    counts = fill_spool(spool, day_start_ms)
    assert counts == day_counts()  # the probes made what the schedule says
    assert counts.batches == 14_400 and counts.samples == 37_440
    mqtt_up = publish_bytes(spool, Topics().data(WHO), now_ms)

    stats = stack.tmp / "proxy.json"
    stack.spawn(stack.in_client([
        sys.executable, "-m", "tests.peers.delay_proxy",
        "--listen", f"127.0.0.1:{PROXY_PORT}", "--to", f"{stack.link.server_ip}:{BROKER_PORT}",
        "--delay", str(DELAY_S), "--stats", str(stats)]), stack.tmp / "proxy.log")
    wait_until(stats.exists, 20, "the delay proxy")
    wire_before = link_bytes(stack.link)
    began = time.monotonic()
    stack.start_agent({
        "agent": {"id": WHO.agent, "school": WHO.school, "district": WHO.district},
        "mqtt": {"host": "127.0.0.1", "port": PROXY_PORT, "session_expiry": "1h"},
        "spool": {"path": str(spool), "max_mb": 64},
        "publish": {"max_inflight": MAX_INFLIGHT},
        "probes": [],
    })
    # What the link allows: every PUBLISH once with its headers, at the shaped rate, x 1.5;
    # plus the round trips to connect and for the last acks, and the collector's flushes.
    bound_s = 1.5 * mqtt_up * HEADER_OVERHEAD * 8 / RATE_BIT_S + 10 * 2 * DELAY_S + 20
    curve: list[tuple[int, int]] = []

    def drained() -> bool:
        left = depth(spool)
        elapsed = int(time.monotonic() - began)
        if not curve or elapsed - curve[-1][0] >= 30:
            curve.append((elapsed, left))
            print(f"{elapsed:4d} s: {left} batches left", flush=True)
        return left == 0

    wait_until(drained, bound_s, "the day's backlog to drain", interval=0.5)
    drain_s = time.monotonic() - began
    wire_up = link_bytes(stack.link)[0] - wire_before[0]
    wire_down = link_bytes(stack.link)[1] - wire_before[1]
    proxied = json.loads(stats.read_text())

    day_end = f"time < {(day_start_ms + DAY_S * 1000) * 1_000_000}"
    stored = {kind: stack.count(kind, field, day_end) for kind, field in
              (("iface", "up"), ("host", "uptime_s"), ("reach", "up"), ("agent", "rss_mb"))}
    assert stored == counts.per_kind
    # Each batch went up about once: no resend storm on the long link.
    assert mqtt_up <= proxied["up"] <= mqtt_up * 1.1 + 20_000, (proxied, mqtt_up)

    figures = {
        "drain_s": round(drain_s, 1), "bound_s": round(bound_s, 1),
        "samples": counts.samples, "batches": counts.batches,
        "mqtt_bytes_up": proxied["up"], "mqtt_bytes_down": proxied["down"],
        "wire_bytes_up": wire_up, "wire_bytes_down": wire_down,
        "mqtt_bytes_per_sample": round(proxied["up"] / counts.samples, 1),
        "wire_bytes_per_sample": round(wire_up / counts.samples, 1),
        "link_use": round(wire_up * 8 / RATE_BIT_S / drain_s, 3),
        "curve": curve,
    }
    for key, value in figures.items():
        record_property(key, value)
    print("\nsatellite drain:", json.dumps(figures))
    assert drain_s <= bound_s
