"""The collector's CPU cost per message: ``validate()`` and ``batch_key()``, nothing else.

Issue 11 part 2 asks one collector process to take >= 10,000 small messages/s; its validator
thread decodes, checks and formats every message, so this is its ceiling before MQTT and the
write.  Two workloads of iface samples (6 fields: floats, ints and a bool), as agents send them:
small envelopes of 1-5 samples (mean 3) from 600 agents, and 50-sample envelopes.

The machine's speed varies (shared cores), so each figure is the best of ``--repeat`` passes
over the same messages, with the garbage collector off as timeit does; the reference is a plain
``orjson.loads`` of the same payloads measured in the same run, whose ratio carries from one
machine to another better than microseconds do.  The load average is printed with them.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable

import orjson

from collector.clocks import ClockBook
from collector.config import ClockSettings
from collector.inflight import batch_key
from collector.validate import TimeWindow, validate
from common.wire import AgentIdentity, Sample, Topics, encode_samples, wrap_envelope

PREFIX = "bench/v1"
AGENTS = 600
DAY_MS = 86_400_000


def envelopes(count: int, sizes: Callable[[int], int], now_ms: int) -> list[tuple[str, bytes]]:
    """``count`` data messages (topic, payload) from AGENTS agents; message m has sizes(m)."""
    topics = Topics(PREFIX)
    out = []
    for m in range(count):
        agent = m % AGENTS
        who = AgentIdentity("d1", f"s{agent // 30}", f"a{agent}")
        samples = [Sample("iface", now_ms - 1000 + k, {"iface": f"eth{k % 4}", "role": "wan"},
                          {"rx_bps": 81234567.5 + m + k, "tx_bps": 1234567.0 + k,
                           "link_mbps": 1000, "up": True, "errors": k % 3, "drops": 0})
                   for k in range(sizes(m))]
        out.append((topics.data(who), wrap_envelope(who, m // AGENTS, now_ms,
                                                    encode_samples(samples))))
    return out


def best_us(run: Callable[[], object], messages: int, repeat: int) -> float:
    """The best pass of ``run`` over ``messages`` messages, in us per message."""
    run()  # warm: memos filled, as in a collector that has seen its agents
    best = float("inf")
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best / messages * 1e6


def measure(msgs: list[tuple[str, bytes]], now_ms: int, repeat: int) -> tuple[float, float]:
    """(validate+batch_key, orjson.loads) in us per message."""
    topics = Topics(PREFIX)
    clocks = ClockBook(ClockSettings())
    window = TimeWindow(max_age_ms=15 * DAY_MS)

    def full() -> None:
        for topic, payload in msgs:
            result = validate(topics, topic, payload, clocks, now_ms, window=window)
            if batch_key(result) is None:
                raise SystemExit(f"not accepted: {result}")

    def loads() -> None:
        for _topic, payload in msgs:
            orjson.loads(payload)

    return best_us(full, len(msgs), repeat), best_us(loads, len(msgs), repeat)


def main() -> int:
    """Print us/message for both workloads, the orjson reference and the load average."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    load = os.getloadavg()
    print(f"python {sys.version.split()[0]}, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}, best of {args.repeat}")
    for name, count, sizes, per_sample in (
            ("1-5 samples (mean 3)", 3000, lambda m: 1 + m % 5, 3),
            ("50 samples", 300, lambda m: 50, 50)):
        full, ref = measure(envelopes(count, sizes, now_ms), now_ms, args.repeat)
        print(f"{name:>22}: {full:7.1f} us/message ({full / per_sample:5.2f} us/sample); "
              f"orjson.loads {ref:6.1f} us; ratio {full / ref:4.1f}")
    load = os.getloadavg()
    print(f"load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
