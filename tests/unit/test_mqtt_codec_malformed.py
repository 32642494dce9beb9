"""Packets whose fields run past their own end, or break a rule of the OASIS spec.

Each must raise ProtocolError: the first reader built packets out of the bytes of the *next*
packet (a PUBACK's id from a following PINGRESP) or accepted the malformed one.
"""

from __future__ import annotations

import pytest

from collector.mqtt_codec import PacketReader, ProtocolError

PINGRESP = b"\xd0\x00"

CASES = {
    # PUBACK remaining length 0 / 1 (3.4.2: packet id is 2 bytes): once PubAck(mid=0xd000),
    # the mid read out of the following PINGRESP.
    "puback remaining length 0": (True, b"\x40\x00" + PINGRESP),
    "puback remaining length 1": (True, b"\x40\x01\x00" + PINGRESP),
    # CONNACK remaining length 1 (3.2.2): once ConnAck(reason=0xd0) from the next packet.
    "connack remaining length 1": (True, b"\x20\x01\x00" + PINGRESP),
    # CONNACK v5 whose Receive Maximum value is cut by the packet end: once
    # receive_maximum=208, its second byte taken from the following PINGRESP.
    "connack property cut by packet end": (True, b"\x20\x05\x00\x00\x03\x21\x00" + PINGRESP),
    # 3.2.2.3.3: Receive Maximum 0 is a Protocol Error.  Today accepted: DataSession then
    # sets its send quota to 0 and never sends a publish again, silently (no disconnect).
    "connack receive maximum 0": (True, b"\x20\x06\x00\x00\x03\x21\x00\x00"),
    # SUBACK v5 whose property length runs past the packet end: once SubAck(codes=()),
    # which collector/subscriber.py on_suback takes for "subscribed" (no code >= 0x80).
    "suback v5 properties past the end": (True, b"\x90\x03\x00\x01\x09" + PINGRESP * 5),
    # 3.9.3: a SUBACK carries one code per filter; none at all is malformed.  Same effect.
    "suback with no codes (v3.1.1)": (False, b"\x90\x02\x00\x01"),
    # 2.2.2.2: an unknown property identifier makes the packet malformed.  PUBLISH and
    # SUBACK properties were once skipped by length only; now every block is read
    # (collector/mqtt_properties.py), so this one is refused.
    "publish v5 unknown property 0x7f": (True, b"\x30\x07\x00\x01t\x02\x7f\x00x"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_packets_raise_protocol_error(name: str) -> None:
    v5, raw = CASES[name]
    with pytest.raises(ProtocolError):
        print(PacketReader(v5=v5).feed(raw))
