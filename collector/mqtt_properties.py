"""MQTT 5 property blocks (OASIS MQTT 5.0, 2.2.2): read, bounds-checked, for mqtt_codec.py.

A broken block is a protocol error (the connection is dropped), never a silent skip: every
property is read to its end, unknown identifiers are refused, and nothing may run past its
block or its packet.
"""

from __future__ import annotations

import struct
from typing import Final


class ProtocolError(Exception):
    """The byte stream does not follow MQTT: the connection must be dropped."""


# MQTT 5 property identifiers (2.2.2.2) and how to skip or read each one.
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPERTY_TYPES: Final = {
    0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT, 0x11: _U32,
    0x12: _STR, 0x13: _U16, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _U32, 0x19: _BYTE,
    0x1A: _STR, 0x1C: _STR, 0x1F: _STR, 0x21: _U16, 0x22: _U16, 0x23: _U16, 0x24: _BYTE,
    0x25: _BYTE, 0x26: _PAIR, 0x27: _U32, 0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
SESSION_EXPIRY: Final = 0x11
RECEIVE_MAXIMUM: Final = 0x21
REASON_STRING: Final = 0x1F


def _varint_at(body: bytes, pos: int, what: str) -> tuple[int, int]:
    """The Variable Byte Integer (1.5.5) at ``pos``: (value, where the next field starts)."""
    value, shift = 0, 0
    while True:
        byte = body[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ProtocolError(f"{what} longer than 4 bytes")


def properties_end(body: bytes, pos: int) -> int:
    """Where a v5 property block that starts at ``pos`` ends; ProtocolError past the body."""
    length, pos = _varint_at(body, pos, "property length")
    if pos + length > len(body):
        raise ProtocolError("properties run past the packet")
    return pos + length


def properties(body: bytes, pos: int) -> dict[int, int | str | bytes]:
    """A v5 property block (2.2.2) read into {identifier: value} (user properties left out)."""
    stop = properties_end(body, pos)
    _length, pos = _varint_at(body, pos, "property length")  # the first property's start
    out: dict[int, int | str | bytes] = {}
    while pos < stop:
        ident = body[pos]
        kind = _PROPERTY_TYPES.get(ident)
        if kind is None:
            raise ProtocolError(f"unknown property 0x{ident:02x}")
        pos, value = _property_value(body, pos + 1, kind)
        if pos > stop:
            raise ProtocolError(f"property 0x{ident:02x} runs past its block")
        if value is not None:
            out[ident] = value
    return out


def _property_value(body: bytes, pos: int, kind: int) -> tuple[int, int | str | bytes | None]:
    """One property's value at ``pos``: (where the next property starts, value)."""
    if kind == _BYTE:
        return pos + 1, body[pos]
    if kind == _U16:
        return pos + 2, (body[pos] << 8) | body[pos + 1]
    if kind == _U32:
        return pos + 4, struct.unpack_from("!I", body, pos)[0]
    if kind == _VARINT:
        value, pos = _varint_at(body, pos, "property varint")
        return pos, value
    n = (body[pos] << 8) | body[pos + 1]
    raw, pos = body[pos + 2:pos + 2 + n], pos + 2 + n
    if len(raw) != n:
        raise ProtocolError("property string runs past the packet")
    if kind == _PAIR:  # a user property: its value follows, and is not kept
        m = (body[pos] << 8) | body[pos + 1]
        if pos + 2 + m > len(body):
            raise ProtocolError("user property runs past the packet")
        return pos + 2 + m, None
    return pos, raw.decode() if kind == _STR else raw
