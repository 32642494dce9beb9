"""MQTT 5 and 3.1.1 packets as the collector's data session uses them: encode and decode.

Only what a QoS 1 subscriber that also publishes QoS 1 acks needs: CONNECT/CONNACK,
SUBSCRIBE/SUBACK, PUBLISH/PUBACK, PINGREQ/PINGRESP and DISCONNECT (OASIS MQTT 5.0 and 3.1.1,
section numbers below).  Written for the collector's ingest path (issue 11): paho-mqtt reads
every fixed header byte by byte, builds a ``Properties`` object per packet and wakes its
thread per outgoing packet; a bare paho subscriber drains ~11,000 messages/s here, this codec
fed by one ``recv`` of many packets ~76,000 (docs/benchmarks.md).  The agents keep paho: they
send a message a minute.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from collector.mqtt_properties import (
    REASON_STRING,
    RECEIVE_MAXIMUM,
    SESSION_EXPIRY,
    ProtocolError,
    properties,
    properties_end,
)

# Besides what is defined here, ProtocolError (collector/mqtt_properties.py): the session
# catches it from here.
__all__ = [
    "CONNACK", "CONNECT", "DISCONNECT", "MAX_PACKET_BYTES", "PINGREQ", "PINGRESP", "PUBACK",
    "PUBLISH", "SUBACK", "SUBSCRIBE", "ConnAck", "Disconnect", "Packet", "PacketReader",
    "PingResp", "ProtocolError", "PubAck", "Publish", "SubAck", "connect", "disconnect",
    "puback", "publish", "set_dup", "subscribe", "varint",
]

# Fixed-header packet types (the high nibble of the first byte).
CONNECT: Final = 0x10
CONNACK: Final = 0x20
PUBLISH: Final = 0x30
PUBACK: Final = 0x40
SUBSCRIBE: Final = 0x82  # with the reserved flags 0b0010 (3.8.1)
SUBACK: Final = 0x90
PINGREQ: Final = b"\xc0\x00"
PINGRESP: Final = 0xD0
DISCONNECT: Final = 0xE0

# A broker never sends the collector more than the broker's own message size limit allows;
# anything beyond this is a broken stream, not a message (the reader refuses it).
MAX_PACKET_BYTES: Final = 32 * 1024 * 1024

class Publish(NamedTuple):
    """A PUBLISH the broker delivered."""

    topic: str
    payload: bytes
    qos: int
    mid: int  # 0 for QoS 0
    retain: bool


class ConnAck(NamedTuple):
    """The broker's answer to CONNECT; ``reason`` 0 is success (v5 reason code or v3 code)."""

    session_present: bool
    reason: int
    receive_maximum: int  # how many QoS 1 publishes we may have un-acked (65,535: no limit)
    reason_string: str


class SubAck(NamedTuple):
    """The broker's answer to SUBSCRIBE: one code per filter, >= 0x80 is a refusal."""

    mid: int
    codes: tuple[int, ...]


class PubAck(NamedTuple):
    """The broker took one of our QoS 1 publishes."""

    mid: int


class PingResp(NamedTuple):
    """The broker answered a PINGREQ."""


class Disconnect(NamedTuple):
    """The broker ends the connection (MQTT 5 only), with its reason."""

    reason: int
    reason_string: str


Packet = Publish | ConnAck | SubAck | PubAck | PingResp | Disconnect


def varint(n: int) -> bytes:
    """A Variable Byte Integer (1.5.5)."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _str(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def connect(client_id: str, *, v5: bool, keepalive: int, clean: bool,
            username: str | None = None, password: str | None = None,
            session_expiry: int = 0, receive_maximum: int | None = None) -> bytes:
    """CONNECT (3.1): with v5, a session expiry and receive maximum as properties."""
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0) | (
        0x40 if password is not None else 0)
    head = _str("MQTT") + bytes((5 if v5 else 4, flags)) + struct.pack("!H", keepalive)
    if v5:
        props = b""
        if session_expiry:
            props += bytes((SESSION_EXPIRY,)) + struct.pack("!I", min(session_expiry, 2**32 - 1))
        if receive_maximum is not None:
            props += bytes((RECEIVE_MAXIMUM,)) + struct.pack("!H", receive_maximum)
        head += varint(len(props)) + props
    body = head + _str(client_id)
    if username is not None:
        body += _str(username)
    if password is not None:
        body += _str(password)
    return _packet(CONNECT, body)


def subscribe(mid: int, filters: list[str], qos: int, *, v5: bool) -> bytes:
    """SUBSCRIBE (3.8) of every filter at ``qos`` in one packet."""
    body = struct.pack("!H", mid) + (b"\x00" if v5 else b"")
    body += b"".join(_str(f) + bytes((qos,)) for f in filters)
    return _packet(SUBSCRIBE, body)


def publish(topic: str, payload: bytes, mid: int, *, v5: bool, dup: bool = False) -> bytes:
    """A QoS 1 PUBLISH (3.3), not retained."""
    body = _str(topic) + struct.pack("!H", mid) + (b"\x00" if v5 else b"") + payload
    return _packet(PUBLISH | 0x02 | (0x08 if dup else 0), body)


def set_dup(packet: bytes) -> bytes:
    """The same PUBLISH marked as a redelivery (3.3.1.1)."""
    return bytes((packet[0] | 0x08,)) + packet[1:]


def puback(mid: int) -> bytes:
    """PUBACK (3.4): success; v5 allows the reason code to be left out (3.4.2.1)."""
    return b"\x40\x02" + struct.pack("!H", mid)


def disconnect(*, v5: bool, end_session: bool) -> bytes:
    """DISCONNECT (3.14); with v5 and ``end_session``, Session Expiry 0 ends the session now."""
    if v5 and end_session:
        props = bytes((SESSION_EXPIRY,)) + b"\x00\x00\x00\x00"
        return _packet(DISCONNECT, b"\x00" + varint(len(props)) + props)
    return b"\xe0\x00"


class PacketReader:
    """Splits a received byte stream into packets; keeps an incomplete tail for the next feed."""

    def __init__(self, *, v5: bool) -> None:
        self.v5 = v5
        self._buf = b""

    def feed(self, data: bytes) -> list[Packet]:
        """Every whole packet in what came so far; raises ProtocolError on a broken stream."""
        buf = self._buf + data if self._buf else data
        packets: list[Packet] = []
        pos, size = 0, len(buf)
        while pos + 2 <= size:
            first = buf[pos]
            length, shift, i = 0, 0, pos + 1
            while True:
                if i >= size:
                    length = -1
                    break
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise ProtocolError("remaining length longer than 4 bytes")
            if length < 0:
                break
            if length > MAX_PACKET_BYTES:
                raise ProtocolError(f"a packet of {length} bytes")
            end = i + length
            if end > size:
                break
            packets.append(self._decode(first, buf, i, end))
            pos = end
        self._buf = buf[pos:]
        return packets

    def _decode(self, first: int, buf: bytes, i: int, end: int) -> Packet:
        kind = first & 0xF0
        try:
            if kind == PUBLISH:
                return self._publish(first, buf, i, end)
            # The rare packets are read from their own bytes: a field that runs past them is
            # an IndexError here, never a byte of the next packet.
            body = buf[i:end]
            if kind == PUBACK:
                if len(body) < 2:
                    raise ProtocolError("PUBACK without a packet id")
                return PubAck((body[0] << 8) | body[1])
            if kind == SUBACK:
                start = properties_end(body, 2) if self.v5 else 2
                if start > len(body) - 1:  # at least one code (3.9.3)
                    raise ProtocolError("SUBACK without a return code")
                if self.v5:
                    properties(body, 2)
                return SubAck((body[0] << 8) | body[1], tuple(body[start:]))
            if kind == CONNACK:
                return self._connack(body)
            if kind == PINGRESP:
                return PingResp()
            if kind == DISCONNECT:
                props = properties(body, 1) if len(body) > 1 else {}
                return Disconnect(body[0] if body else 0, str(props.get(REASON_STRING, "")))
        except (IndexError, UnicodeDecodeError, struct.error) as exc:
            raise ProtocolError(f"malformed packet type {kind >> 4}: {exc}") from None
        raise ProtocolError(f"unexpected packet type {kind >> 4}")

    def _publish(self, first: int, buf: bytes, i: int, end: int) -> Publish:
        qos = (first >> 1) & 3
        if qos > 1 or i + 2 > end:
            raise ProtocolError(f"malformed PUBLISH (QoS {qos})")
        topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
        pos = topic_end + (2 if qos else 0)
        if pos > end:
            raise ProtocolError("PUBLISH topic runs past the packet")
        topic = buf[i + 2:topic_end].decode()
        mid = (buf[topic_end] << 8) | buf[topic_end + 1] if qos else 0
        if self.v5:
            if pos >= end:
                raise ProtocolError("PUBLISH without its property length")
            if buf[pos] == 0:  # no properties: what brokers forward for our agents
                pos += 1
            else:  # read them, so a broken block is a protocol error, not a silent skip
                body = buf[pos:end]
                pos += properties_end(body, 0)
                properties(body, 0)
            if pos > end:
                raise ProtocolError("PUBLISH properties run past the packet")
        return Publish(topic, buf[pos:end], qos, mid, bool(first & 1))

    def _connack(self, body: bytes) -> ConnAck:
        if len(body) < 2:
            raise ProtocolError("CONNACK shorter than 2 bytes")
        session_present, reason = bool(body[0] & 1), body[1]
        if not self.v5 or len(body) == 2:
            # A 3.1.1 broker answers a v5 CONNECT with its own two-byte CONNACK (code 1:
            # unacceptable protocol version), which is what the NATS MQTT listener does.
            return ConnAck(session_present, reason, 65_535, "")
        props = properties(body, 2)
        receive_maximum = int(props.get(RECEIVE_MAXIMUM, 65_535))
        if receive_maximum == 0:  # 3.2.2.3.3: a protocol error (we could never publish)
            raise ProtocolError("CONNACK with receive maximum 0")
        return ConnAck(session_present, reason, receive_maximum,
                       str(props.get(REASON_STRING, "")))
