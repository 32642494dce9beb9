"""collector/mqtt_codec.py against hand-built packets laid out as the OASIS specs say.

Broker packets are built here byte by byte (MQTT 5.0 and 3.1.1 section numbers beside each);
the encoder's output is compared with literal bytes of the same layouts.  Hostile streams must
end in ProtocolError: never IndexError, never a hang, never a packet made of the next one.
"""

from __future__ import annotations

import contextlib
import random
import struct

import pytest

from collector import mqtt_codec as codec
from collector.mqtt_codec import (
    ConnAck,
    Disconnect,
    PacketReader,
    PingResp,
    ProtocolError,
    PubAck,
    Publish,
    SubAck,
)


def utf8(text: str) -> bytes:
    """A UTF-8 Encoded String (1.5.4 / 3.1.1 1.5.3): 2-byte length, then the bytes."""
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def vbi(n: int) -> bytes:
    """A Variable Byte Integer written from the spec's algorithm (1.5.5), not the codec's."""
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n > 0 else 0))
        if n == 0:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    """Fixed header (2.1.1): type and flags, remaining length, then the rest."""
    return bytes((first,)) + vbi(len(body)) + body


def props(*items: bytes) -> bytes:
    """A v5 property block (2.2.2): its length, then the properties."""
    block = b"".join(items)
    return vbi(len(block)) + block


# -- hand-built broker packets ----------------------------------------------------------------

# CONNACK v5 (3.2): session present, reason 0, Receive Maximum 0x21 = 20 and Reason String
# 0x1F, with a Topic Alias Maximum 0x22 and a User Property 0x26 the reader must step over.
CONNACK_V5 = packet(0x20, b"\x01\x00" + props(
    b"\x21" + struct.pack("!H", 20), b"\x22\x00\x0a", b"\x26" + utf8("k") + utf8("v"),
    b"\x1f" + utf8("welcome back")))
# CONNACK 3.1.1 (3.2): no session, return code 0.
CONNACK_V311 = b"\x20\x02\x00\x00"
# A 3.1.1 broker's answer to a v5 CONNECT: its own 2-byte CONNACK, code 1 (bad version).
CONNACK_V311_REFUSAL = b"\x20\x02\x00\x01"
# PUBLISH (3.3): QoS 0 (no packet id), retained; QoS 1 with packet id 0x1234.
PUBLISH_Q0_V311 = packet(0x31, utf8("a/b") + b"hello")
PUBLISH_Q1_V311 = packet(0x32, utf8("a/b") + b"\x12\x34" + b"payload-1")
PUBLISH_Q0_V5 = packet(0x30, utf8("a/b") + props() + b"zero")
PUBLISH_Q1_V5 = packet(0x3A, utf8("s/x") + b"\x00\x07" + props(
    b"\x01\x01", b"\x03" + utf8("application/json"), b"\x0b" + vbi(300),
    b"\x26" + utf8("who") + utf8("agent-1")) + b'{"v":1}')
PUBACK_V311 = b"\x40\x02\x00\x2a"
PUBACK_V5 = packet(0x40, b"\x00\x2b\x10" + props(b"\x1f" + utf8("no subscribers")))
# SUBACK (3.9): one code per filter; 0x80 (v3 failure) / 0x87 (v5 not authorized).
SUBACK_V311 = packet(0x90, b"\x00\x05" + b"\x01\x80\x00")
SUBACK_V5 = packet(0x90, b"\x00\x06" + props(b"\x1f" + utf8("acl")) + b"\x01\x87\x97")
PINGRESP = b"\xd0\x00"
DISCONNECT_V5 = packet(0xE0, b"\x8b" + props(b"\x1f" + utf8("server shutting down")))


def test_connack_v5_with_receive_maximum_and_reason_string() -> None:
    assert PacketReader(v5=True).feed(CONNACK_V5) == [ConnAck(True, 0, 20, "welcome back")]


def test_connack_v5_without_receive_maximum_means_no_limit() -> None:
    raw = packet(0x20, b"\x00\x86" + props(b"\x1f" + utf8("bad password")))
    assert PacketReader(v5=True).feed(raw) == [ConnAck(False, 0x86, 65_535, "bad password")]


def test_connack_v311_and_the_two_byte_answer_to_a_v5_connect() -> None:
    assert PacketReader(v5=False).feed(CONNACK_V311) == [ConnAck(False, 0, 65_535, "")]
    assert PacketReader(v5=True).feed(CONNACK_V311_REFUSAL) == [ConnAck(False, 1, 65_535, "")]


def test_publish_qos0_and_qos1_v311() -> None:
    reader = PacketReader(v5=False)
    assert reader.feed(PUBLISH_Q0_V311 + PUBLISH_Q1_V311) == [
        Publish("a/b", b"hello", 0, 0, True), Publish("a/b", b"payload-1", 1, 0x1234, False)]


def test_publish_qos0_and_qos1_v5_with_and_without_properties() -> None:
    reader = PacketReader(v5=True)
    assert reader.feed(PUBLISH_Q0_V5 + PUBLISH_Q1_V5) == [
        Publish("a/b", b"zero", 0, 0, False), Publish("s/x", b'{"v":1}', 1, 7, False)]


def test_publish_with_dup_flag_and_empty_payload() -> None:
    raw = packet(0x3A, utf8("t") + b"\x00\x01" + props())
    assert PacketReader(v5=True).feed(raw) == [Publish("t", b"", 1, 1, False)]


def test_puback_suback_pingresp_disconnect() -> None:
    assert PacketReader(v5=False).feed(PUBACK_V311 + SUBACK_V311 + PINGRESP) == [
        PubAck(42), SubAck(5, (1, 0x80, 0)), PingResp()]
    assert PacketReader(v5=True).feed(PUBACK_V5 + SUBACK_V5 + PINGRESP + DISCONNECT_V5) == [
        PubAck(43), SubAck(6, (1, 0x87, 0x97)), PingResp(),
        Disconnect(0x8B, "server shutting down")]


def test_disconnect_v5_short_forms() -> None:
    # 3.14.2.1: remaining length 0 means reason 0x00; 1 byte is a reason without properties.
    assert PacketReader(v5=True).feed(b"\xe0\x00" + b"\xe0\x01\x8e") == [
        Disconnect(0, ""), Disconnect(0x8E, "")]


def test_a_big_publish_with_a_three_byte_remaining_length() -> None:
    payload = bytes(range(256)) * 100  # 25,600 bytes: remaining length needs 3 bytes
    raw = packet(0x32, utf8("big") + b"\x00\x09" + payload)
    assert raw[1] & 0x80 and raw[2] & 0x80 and not raw[3] & 0x80
    assert PacketReader(v5=False).feed(raw) == [Publish("big", payload, 1, 9, False)]


# -- the same stream however it is split --------------------------------------------------------

V5_STREAM = (CONNACK_V5 + PUBLISH_Q0_V5 + PUBLISH_Q1_V5 + PUBACK_V5 + SUBACK_V5 + PINGRESP
             + packet(0x32, utf8("big") + b"\x00\x09" + bytes(300)) + DISCONNECT_V5)
V311_STREAM = (CONNACK_V311 + PUBLISH_Q0_V311 + PUBLISH_Q1_V311 + PUBACK_V311 + SUBACK_V311
               + PINGRESP)


def feed_in_pieces(v5: bool, stream: bytes, cuts: list[int]) -> list[codec.Packet]:
    reader = PacketReader(v5=v5)
    out: list[codec.Packet] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += reader.feed(stream[start:end])
    assert reader.feed(b"") == []  # nothing left over, nothing invented
    return out


@pytest.mark.parametrize(("v5", "stream"), [(True, V5_STREAM), (False, V311_STREAM)])
def test_whole_byte_by_byte_and_random_splits_give_the_same_packets(
        v5: bool, stream: bytes) -> None:
    whole = PacketReader(v5=v5).feed(stream)
    assert len(whole) == (8 if v5 else 6)
    assert feed_in_pieces(v5, stream, list(range(1, len(stream)))) == whole
    rng = random.Random(11)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 12)))
        assert feed_in_pieces(v5, stream, cuts) == whole, cuts


def test_an_incomplete_packet_waits_for_the_rest() -> None:
    reader = PacketReader(v5=False)
    assert reader.feed(PUBLISH_Q1_V311[:-1]) == []
    assert reader.feed(PUBLISH_Q1_V311[-1:] + PINGRESP[:1]) == [
        Publish("a/b", b"payload-1", 1, 0x1234, False)]
    assert reader.feed(PINGRESP[1:]) == [PingResp()]


# -- hostile input ----------------------------------------------------------------------------

HOSTILE = {
    # 2.1.4: at most 4 bytes of remaining length.
    "remaining length of 5 bytes": b"\x30\xff\xff\xff\xff\x01" + bytes(10),
    # Announced, not sent: refused before waiting for 200 MB.
    "200 MB announced": b"\x30" + vbi(200 * 1024 * 1024),
    "just over MAX_PACKET_BYTES": b"\x30" + vbi(codec.MAX_PACKET_BYTES + 1),
    "reserved packet type 0": b"\x00\x00",
    "PUBREC (the session never sends QoS 2)": b"\x50\x02\x00\x01",
    "SUBSCRIBE from the broker": packet(0x82, b"\x00\x01" + utf8("a") + b"\x01"),
    "PUBLISH topic length past the end": b"\x32\x05\x00\x40abc",
    "PUBLISH topic length past the end, more data behind":
        b"\x32\x05\x00\x40abc" + PINGRESP * 40,
    "PUBLISH QoS 2": packet(0x34, utf8("t") + b"\x00\x01" + b"x"),
    "PUBLISH QoS 3 (malformed)": packet(0x36, utf8("t") + b"\x00\x01" + b"x"),
    "PUBLISH QoS 1 without room for the packet id": packet(0x32, utf8("t") + b"\x00"),
    "PUBLISH topic not UTF-8": packet(0x30, utf8("t")[:1] + b"\x02\xff\xfe" + b"x"),
    "CONNACK unknown property 0x7f": packet(0x20, b"\x00\x00" + props(b"\x7f\x01")),
    "CONNACK property value cut short": packet(0x20, b"\x00\x00" + b"\x03\x21\x00"),
    "CONNACK reason string not UTF-8": packet(0x20, b"\x00\x00" + props(b"\x1f\x00\x01\xff")),
    "DISCONNECT unknown property 0x00": packet(0xE0, b"\x8b" + props(b"\x00\x01")),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_streams_raise_protocol_error(name: str) -> None:
    raw = HOSTILE[name]
    with pytest.raises(ProtocolError):
        PacketReader(v5=True).feed(raw)
    # Fed byte by byte it fails too, at the latest once the bytes are all in: never an
    # IndexError, never a packet quietly returned.
    reader = PacketReader(v5=True)
    with pytest.raises(ProtocolError):
        for i in range(len(raw)):
            assert reader.feed(raw[i:i + 1]) == []


def test_a_200_mb_announcement_is_refused_from_its_header_alone() -> None:
    # Four bytes of header: the reader must not wait for (or buffer) the body.
    with pytest.raises(ProtocolError, match="bytes"):
        PacketReader(v5=False).feed(b"\x30" + vbi(200 * 1024 * 1024))


def test_largest_allowed_announcement_just_waits() -> None:
    assert PacketReader(v5=False).feed(b"\x30" + vbi(codec.MAX_PACKET_BYTES) + b"\x00") == []


def test_random_garbage_never_escapes_as_another_exception() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        for v5 in (True, False):
            with contextlib.suppress(ProtocolError):
                PacketReader(v5=v5).feed(raw)


# -- the encoder, against the spec's layouts ----------------------------------------------------

def split(raw: bytes) -> tuple[int, bytes]:
    """The fixed header of one packet read back (2.1.1); the remaining length must be exact."""
    length, shift, i = 0, 0, 1
    while True:
        length |= (raw[i] & 0x7F) << shift
        i += 1
        if not raw[i - 1] & 0x80:
            break
        shift += 7
    assert len(raw) - i == length, "remaining length does not match the bytes"
    return raw[0], raw[i:]


@pytest.mark.parametrize(("n", "raw"), [
    (0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
    (16_384, b"\x80\x80\x01"), (2_097_151, b"\xff\xff\x7f"), (2_097_152, b"\x80\x80\x80\x01"),
    (268_435_455, b"\xff\xff\xff\x7f")])
def test_varint_matches_the_spec_table(n: int, raw: bytes) -> None:
    assert codec.varint(n) == raw  # 1.5.5, Table 1-1


def test_connect_v5_layout() -> None:
    raw = codec.connect("cölly", v5=True, keepalive=30, clean=False, username="u",
                        password="pw", session_expiry=3600, receive_maximum=100)
    first, body = split(raw)
    assert first == 0x10
    assert body == (
        b"\x00\x04MQTT" + b"\x05"  # protocol name and level 5 (3.1.2.1-2)
        + b"\xc0"                  # user name + password, clean start off (3.1.2.3)
        + b"\x00\x1e"              # keepalive 30 s
        + b"\x08" + b"\x11\x00\x00\x0e\x10" + b"\x21\x00\x64"  # session expiry, receive max
        + b"\x00\x06c\xc3\xb6lly"  # client id: length in bytes, not characters
        + b"\x00\x01u" + b"\x00\x02pw")


def test_connect_v5_clean_without_credentials_or_properties() -> None:
    _, body = split(codec.connect("c", v5=True, keepalive=60, clean=True))
    assert body == b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + b"\x00\x01c"


def test_connect_v5_session_expiry_is_capped_at_four_bytes() -> None:
    _, body = split(codec.connect("c", v5=True, keepalive=1, clean=False,
                                  session_expiry=2**40))
    assert body[10:16] == b"\x05\x11\xff\xff\xff\xff"


def test_connect_v311_layout() -> None:
    first, body = split(codec.connect("id-1", v5=False, keepalive=5, clean=True,
                                      username="user", password="secret"))
    assert first == 0x10
    assert body == (b"\x00\x04MQTT\x04\xc2\x00\x05" + b"\x00\x04id-1" + b"\x00\x04user"
                    + b"\x00\x06secret")


def test_subscribe_layout() -> None:
    first, body = split(codec.subscribe(7, ["a/#", "b/+/c"], 1, v5=True))
    assert first == 0x82  # 3.8.1: reserved flags 0010
    assert body == b"\x00\x07" + b"\x00" + b"\x00\x03a/#\x01" + b"\x00\x05b/+/c\x01"
    _, body = split(codec.subscribe(0xFFFF, ["x"], 1, v5=False))
    assert body == b"\xff\xff" + b"\x00\x01x\x01"


def test_publish_layout_and_read_back() -> None:
    raw = codec.publish("t/ü", b"xy", 5, v5=True)
    first, body = split(raw)
    assert first == 0x32  # QoS 1, no DUP, no RETAIN
    assert body == b"\x00\x04t/\xc3\xbc" + b"\x00\x05" + b"\x00" + b"xy"
    assert PacketReader(v5=True).feed(raw) == [Publish("t/ü", b"xy", 1, 5, False)]
    assert codec.publish("t", b"", 9, v5=False, dup=True) == b"\x3a\x05\x00\x01t\x00\x09"
    assert codec.set_dup(raw) == bytes((0x3A,)) + raw[1:]
    payload = bytes(20_000)
    big = codec.publish("big", payload, 65_535, v5=False)
    split(big)
    assert PacketReader(v5=False).feed(big) == [Publish("big", payload, 1, 65_535, False)]


def test_puback_and_disconnect_layouts() -> None:
    assert codec.puback(0x1234) == b"\x40\x02\x12\x34"
    assert codec.puback(1) == b"\x40\x02\x00\x01"
    assert codec.PINGREQ == b"\xc0\x00"
    # 3.14.2.2.2: Session Expiry Interval 0 in DISCONNECT ends the session now.
    assert codec.disconnect(v5=True, end_session=True) == (
        b"\xe0\x07" + b"\x00" + b"\x05" + b"\x11\x00\x00\x00\x00")
    assert codec.disconnect(v5=True, end_session=False) == b"\xe0\x00"
    assert codec.disconnect(v5=False, end_session=True) == b"\xe0\x00"
