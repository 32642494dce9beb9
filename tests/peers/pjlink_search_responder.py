"""A PJLink Class 2 search responder, as a projector's network module behaves (spec v2.10 §3.2).

Listens on UDP 4352; to ``%2SRCH<CR>`` it answers ``%2ACKN=<mac><CR>`` sent to UDP 4352 of the
searching host.  Anything else is ignored, as projectors ignore unknown datagrams.
Run: ``python pjlink_search_responder.py MAC [PORT]``; prints ``ready`` once listening.
"""

from __future__ import annotations

import socket
import sys


def serve(mac: str, port: int = 4352) -> None:
    """Answer searches until killed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", port))
        print("ready", flush=True)
        while True:
            data, (ip, _) = sock.recvfrom(512)
            if data == b"%2SRCH\r":
                sock.sendto(f"%2ACKN={mac}\r".encode("ascii"), (ip, port))


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4352)
