"""The socket side of the collector's MQTT session: TLS, batched reads, non-blocking writes."""

from __future__ import annotations

import socket
import ssl
from typing import Final

from common.config import MqttSettings

RECV_BYTES: Final = 256 * 1024
MAX_READ_PER_ROUND: Final = 4 * RECV_BYTES  # then hand over what came, and send

# Names of the CONNACK refusal codes for the log line (v5 3.2.2.2; 3.1.1 3.2.2.3).
REFUSALS: Final = {
    0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
    0x84: "unsupported protocol version", 0x85: "client id not valid",
    0x86: "bad user name or password", 0x87: "not authorized", 0x88: "server unavailable",
    0x89: "server busy", 0x8A: "banned", 0x8C: "bad authentication method",
    0x95: "packet too large", 0x97: "quota exceeded",
}
V311_REFUSALS: Final = {1: "unacceptable protocol version", 2: "client id rejected",
                         3: "server unavailable", 4: "bad user name or password",
                         5: "not authorized"}


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """The TLS context the settings ask for (CA, client certificate, or no verification)."""
    tls = settings.tls
    assert tls is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif tls.ca_file:
        context.load_verify_locations(tls.ca_file)
    else:
        context.load_default_certs()
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def receive(sock: socket.socket) -> bytes | None:
    """What is waiting (up to MAX_READ_PER_ROUND); None when the broker closed the stream."""
    chunks: list[bytes] = []
    total = 0
    while total < MAX_READ_PER_ROUND:
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            break
        if not data:
            return b"".join(chunks) if chunks else None
        chunks.append(data)
        total += len(data)
        # TLS may hold decrypted bytes that select() cannot see: read them now.
        if len(data) < RECV_BYTES and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            break
    return b"".join(chunks)


def send(sock: socket.socket, data: bytes) -> int:
    """Bytes a non-blocking socket took now (0 when it would block)."""
    try:
        return sock.send(data)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return 0


def flush(sock: socket.socket, data: bytes) -> None:
    """Send the last bytes (PUBACKs, DISCONNECT) before closing, for at most 2 s."""
    try:
        sock.settimeout(2.0)
        sock.sendall(data)
    except OSError:
        pass
