"""What compressing batches would save on a slow uplink: zlib on a day of a gateway's batches.

The batches are those of bench/gateway_day.py (the real probes' samples, one batch per probe
run).  For each way of compressing, the bytes per sample as published (MQTT v5 PUBLISH: fixed
header, topic, packet id, properties, payload) and the time a day's backlog needs at 256 kbit/s
(with the 5.3 % TCP/IP overhead measured by tests/integration/test_satellite.py), plus the CPU
cost of compressing on the agent and decompressing on the collector.

- plain: the envelope as today;
- zlib-1 / zlib-6 / zlib-9: each envelope compressed alone at that level;
- zlib-6 + dictionary: each envelope alone, with a preset dictionary (typical batches of every
  kind, built from another day than the one measured) that both sides know;
- zlib-6, 64 KiB groups: consecutive envelopes of a backlog sent as one compressed message
  (needs a multi-batch message in the wire contract; the upper bound of what batching buys).

Writes docs/benchmarks.md.  Run: .venv/bin/python -m bench.batch_compression
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from bench.gateway_day import day_batches, day_counts
from bench.report import machine, write_section
from common.wire import AgentIdentity, Topics, encode_samples, wrap_envelope

WHO = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")
TOPIC_BYTES = len(Topics().data(WHO).encode())
RATE_BYTES_S = 256_000 / 8
WIRE_OVERHEAD = 1.053  # wire bytes / MQTT bytes, measured over the satellite link
T0_MS = 1_763_890_000_000


def publish_size(payload: int) -> int:
    """Bytes of one MQTT v5 QoS 1 PUBLISH carrying ``payload`` bytes (no properties)."""
    remaining = 2 + TOPIC_BYTES + 2 + 1 + payload
    return 1 + (1 if remaining < 128 else 2 if remaining < 16384 else 3) + remaining


def envelopes(start_ms: int, seed: int) -> tuple[list[bytes], int]:
    """A day's envelopes as the publisher sends them, and their number of samples."""
    out, samples = [], 0
    for seq, batch in enumerate(day_batches(start_ms, seed=seed), start=1):
        out.append(wrap_envelope(WHO, seq, start_ms + seq * 6000, encode_samples(batch)))
        samples += len(batch)
    return out, samples


def dictionary() -> bytes:
    """A preset dictionary: one envelope of each kind from a different day, most common last."""
    seen: dict[str, bytes] = {}
    for seq, batch in enumerate(day_batches(T0_MS - 86_400_000 * 30, 3600, seed=99), start=1):
        seen.setdefault(batch[0].kind, wrap_envelope(WHO, seq, T0_MS, encode_samples(batch)))
    return b"".join(seen[k] for k in ("agent", "host", "reach", "iface"))


@dataclass(frozen=True)
class Result:
    """One way of compressing, over the whole day."""

    name: str
    messages: int
    payload: int
    published: int
    compress_s: float
    decompress_s: float


def measure(name: str, messages: list[bytes], pack: Callable[[bytes], bytes],
            unpack: Callable[[bytes], bytes]) -> Result:
    """Compress every message, check it comes back, total the bytes and the CPU time."""
    begun = time.process_time()
    packed = [pack(m) for m in messages]
    compress_s = time.process_time() - begun
    begun = time.process_time()
    back = [unpack(p) for p in packed]
    decompress_s = time.process_time() - begun
    assert back == messages
    return Result(name, len(packed), sum(map(len, packed)),
                  sum(publish_size(len(p)) for p in packed), compress_s, decompress_s)


def groups(messages: list[bytes], limit: int) -> list[bytes]:
    """Consecutive envelopes joined (newline-separated) into messages of at most ``limit``."""
    out: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for m in messages:
        if current and size + len(m) + 1 > limit:
            out.append(b"\n".join(current))
            current, size = [], 0
        current.append(m)
        size += len(m) + 1
    if current:
        out.append(b"\n".join(current))
    return out


def with_dict(zdict: bytes) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    """zlib level 6 with a preset dictionary, both directions."""
    def pack(data: bytes) -> bytes:
        c = zlib.compressobj(6, zdict=zdict)
        return c.compress(data) + c.flush()

    def unpack(data: bytes) -> bytes:
        d = zlib.decompressobj(zdict=zdict)
        return d.decompress(data) + d.flush()

    return pack, unpack


def main() -> int:
    """Measure every variant and record the table."""
    messages, samples = envelopes(T0_MS, seed=2017)
    assert samples == day_counts().samples
    zdict = dictionary()
    pack_d, unpack_d = with_dict(zdict)
    results = [
        measure("plain (today)", messages, lambda m: m, lambda m: m),
        measure("zlib-1, each envelope", messages, lambda m: zlib.compress(m, 1),
                zlib.decompress),
        measure("zlib-6, each envelope", messages, lambda m: zlib.compress(m, 6),
                zlib.decompress),
        measure("zlib-9, each envelope", messages, lambda m: zlib.compress(m, 9),
                zlib.decompress),
        measure(f"zlib-6 + {len(zdict):,}-byte preset dictionary, each envelope", messages,
                pack_d, unpack_d),
        measure("zlib-6, 64 KiB groups of envelopes", groups(messages, 65_536),
                lambda m: zlib.compress(m, 6), zlib.decompress),
    ]
    plain = results[0]
    rows = []
    for r in results:
        drain_s = r.published * WIRE_OVERHEAD / RATE_BYTES_S
        raw_mb = plain.payload / 1e6
        rows.append(
            f"| {r.name} | {r.messages:,} | {r.payload / samples:.1f} | "
            f"{r.published / samples:.1f} | {plain.published / r.published:.2f} | "
            f"{drain_s / 60:.1f} min | {r.compress_s / raw_mb * 1000:.1f} ms | "
            f"{r.decompress_s / raw_mb * 1000:.1f} ms |")
        print(rows[-1], flush=True)
    counts = day_counts()
    write_section("batch_compression", "\n".join([
        "## Compressing batches (`bench/batch_compression.py`)", "",
        f"A day of a school gateway's batches ({counts.batches:,} batches, {samples:,} samples: "
        "iface every 10 s on 3 NICs, host 60 s, reach 30 s to 3 targets, agent 60 s; made by "
        "the real probes in bench/gateway_day.py). Bytes per sample of the payload and of the "
        "whole MQTT PUBLISH; the time that day's backlog needs at 256 kbit/s (x 1.053 TCP/IP "
        "overhead, as measured on the satellite link); CPU per MB of plain envelopes.", "",
        f"Measured {machine()}.", "",
        "| variant | messages | payload B/sample | published B/sample | saving | day at "
        "256 kbit/s | compress /MB | decompress /MB |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
