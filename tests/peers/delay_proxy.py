"""A TCP proxy that holds every chunk for a fixed delay in each direction: a long link.

``tc netem`` is not available on these kernels, so a satellite hop's latency is added here, in
user space; the link's rate comes from ``tc tbf`` on the veth the upstream connection crosses.
Each chunk read is forwarded ``delay`` seconds after it arrived, in order, so the delay adds to
every round trip like a long pipe (with a window as large as the proxy's memory).

Bytes forwarded in each direction are written as JSON to ``--stats`` every 0.2 s and at exit:
``{"up": N, "down": N, "connections": N}`` (up = client -> upstream).

Run: ``python -m tests.peers.delay_proxy --listen 127.0.0.1:PORT --to HOST:PORT --delay 0.6
--stats FILE``; prints ``ready`` once listening.  SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path


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


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                counters: Counters, direction: str) -> None:
    """Forward ``reader`` to ``writer``, each chunk ``delay`` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while True:
            try:
                chunk = await reader.read(65536)
            except (ConnectionError, OSError):
                chunk = b""
            await queue.put((loop.time() + delay, chunk))
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


async def _serve(listen: tuple[str, int], upstream: tuple[str, int], delay: float,
                 stats: Path) -> None:
    counters = Counters()
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
        await asyncio.gather(_pump(client_r, up_w, delay, counters, "up"),
                             _pump(up_r, client_w, delay, counters, "down"))
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


def main() -> None:
    """Parse the command line and proxy until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--to", type=_address, required=True)
    parser.add_argument("--delay", type=float, default=0.6)
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.listen, args.to, args.delay, args.stats))


if __name__ == "__main__":
    main()
