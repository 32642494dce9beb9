"""A TCP proxy that holds every chunk for a fixed delay in each direction: a long link.

``tc netem`` is not available on these kernels, so a satellite hop's latency is added here, in
user space; the link's rate comes from ``tc tbf`` on the veth the upstream connection crosses.
Each chunk read is forwarded ``delay`` seconds after it arrived, in order, so the delay adds to
every round trip like a long pipe (with a window as large as the proxy's memory).

Bytes forwarded in each direction are written as JSON to ``--stats`` every 0.2 s and at exit:
``{"up": N, "down": N, "connections": N}`` (up = client -> upstream).

In front of InfluxDB it is slow storage: ``--up-delay 0 --down-delay 5-20 --seed 1`` forwards
requests at once (the points are stored) and holds each answer 5-20 s (random per chunk, seeded,
never reordered), so the collector's write takes that long.  ``--record DIR`` keeps what each
connection sent upstream (``up-N.bin``); ``written_lines(DIR)`` counts the points POSTed to
``/write`` in it, duplicates included.

Run: ``python -m tests.peers.delay_proxy --listen 127.0.0.1:PORT --to HOST:PORT --delay 0.6
--stats FILE``; prints ``ready`` once listening.  SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
from dataclasses import dataclass
from pathlib import Path

# A delay in seconds: fixed, or (low, high) drawn per chunk.
Delay = tuple[float, float]


@dataclass
class Counters:
    """Bytes forwarded so far."""

    up: int = 0
    down: int = 0
    connections: int = 0

    def write(self, path: Path) -> None:
        """Replace the stats file atomically (a reader never sees half a file)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"up": self.up, "down": self.down,
                                   "connections": self.connections}))
        os.replace(tmp, path)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: Delay,
                counters: Counters, direction: str, *, rng: random.Random,
                record: Path | None = None) -> None:
    """Forward ``reader`` to ``writer``, each chunk ``delay`` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        last_due = 0.0
        while True:
            try:
                chunk = await reader.read(65536)
            except (ConnectionError, OSError):
                chunk = b""
            if record is not None and chunk:
                with record.open("ab") as out:
                    out.write(chunk)
            # Never before the chunk ahead of it: a pipe does not reorder.
            last_due = max(last_due, loop.time() + rng.uniform(*delay))
            await queue.put((last_due, chunk))
            if not chunk:
                return

    async def write() -> None:
        while True:
            due, chunk = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not chunk:  # EOF travels with the same delay as the data before it
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
            setattr(counters, direction, getattr(counters, direction) + len(chunk))

    reading = asyncio.create_task(read())
    try:
        await write()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()


async def _serve(listen: tuple[str, int], upstream: tuple[str, int], delays: tuple[Delay, Delay],
                 stats: Path, *, seed: int | None, record: Path | None) -> None:
    counters = Counters()
    # One generator per direction, so the answers' delays do not depend on how requests
    # happened to be split into chunks.
    rngs = (random.Random(None if seed is None else 2 * seed),
            random.Random(None if seed is None else 2 * seed + 1))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*upstream)
        except OSError:
            client_w.close()
            return
        counters.connections += 1
        up_file = None if record is None else record / f"up-{counters.connections}.bin"
        try:
            await asyncio.gather(_pump(client_r, up_w, delays[0], counters, "up", rng=rngs[0],
                                       record=up_file),
                                 _pump(up_r, client_w, delays[1], counters, "down",
                                       rng=rngs[1]))
        except asyncio.CancelledError:
            pass  # SIGTERM while the connection is open: just close it
        finally:
            for w in (client_w, up_w):
                w.close()

    async def report() -> None:
        while True:
            counters.write(stats)
            await asyncio.sleep(0.2)

    server = await asyncio.start_server(handle, *listen)
    reporter = asyncio.create_task(report())
    print("ready", flush=True)
    await stop.wait()
    reporter.cancel()
    server.close()
    counters.write(stats)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _delay(text: str) -> Delay:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def written_lines(record: Path) -> int:
    """Points in the bodies of every ``POST /write`` recorded in ``record`` (HTTP/1.1)."""
    lines = 0
    for path in sorted(record.glob("up-*.bin")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            head_end = data.index(b"\r\n\r\n", at)
            head = data[at:head_end].decode("latin-1").split("\r\n")
            length = 0
            for header in head[1:]:
                name, _, value = header.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = data[head_end + 4:head_end + 4 + length]
            if head[0].startswith("POST /write"):
                lines += sum(1 for line in body.split(b"\n") if line.strip())
            at = head_end + 4 + length
    return lines


def main() -> None:
    """Parse the command line and proxy until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--to", type=_address, required=True)
    parser.add_argument("--delay", type=_delay, default=(0.6, 0.6),
                        help="seconds each way, or LOW-HIGH (default 0.6)")
    parser.add_argument("--up-delay", type=_delay, help="client -> upstream (default --delay)")
    parser.add_argument("--down-delay", type=_delay, help="upstream -> client (default --delay)")
    parser.add_argument("--seed", type=int, help="for delays drawn from a range")
    parser.add_argument("--record", type=Path, help="keep what is sent upstream in this dir")
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args()
    delays = (args.up_delay or args.delay, args.down_delay or args.delay)
    if args.record is not None:
        args.record.mkdir(parents=True, exist_ok=True)
    asyncio.run(_serve(args.listen, args.to, delays, args.stats, seed=args.seed,
                       record=args.record))


if __name__ == "__main__":
    main()
