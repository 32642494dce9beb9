"""Pure pieces of the SNMP probe: varbind helpers, IF-MIB and AP-table parsing, counter rates.

Nothing here imports pysnmp: values arrive as plain Python (see :data:`Value`), so every parser is
tested on varbind lists without a network.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.probes.base import TAG_FORBIDDEN_RE

# What the transport turns SNMP values into: INTEGER, Counter32/64, Gauge32, TimeTicks -> int;
# OCTET STRING (and IpAddress) -> bytes; OBJECT IDENTIFIER -> dotted str; noSuchObject,
# noSuchInstance, endOfMibView and NULL -> None.
Value = int | bytes | str | None
VarBind = tuple[str, Value]


class SnmpError(Exception):
    """A device that did not answer usefully (timeout, authentication, error status)."""


def column_rows(varbinds: Iterable[VarBind], column_oid: str) -> dict[str, Value]:
    """The rows of one table column: {index suffix: value}; varbinds outside it are ignored."""
    prefix = column_oid.strip(".") + "."
    rows: dict[str, Value] = {}
    for raw_oid, value in varbinds:
        oid = raw_oid.strip(".")
        if oid.startswith(prefix) and value is not None:
            rows[oid[len(prefix):]] = value
    return rows


def as_int(value: Value) -> int | None:
    """An integer value, None for anything else (a string where a number belongs is garbage)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_text(value: Value) -> str | None:
    """A DisplayString as text: NUL padding cut, UTF-8 or else GB18030 (Chinese controllers)."""
    if isinstance(value, str):
        raw = value.encode("utf-8", "replace")
    elif isinstance(value, bytes):
        raw = value
    else:
        return None
    raw = raw.split(b"\x00", 1)[0]  # Windows agents send C strings with the NUL
    for encoding in ("utf-8", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = raw.decode("utf-8", "replace")
    # Tag values may not hold what the wire refuses (common/wire.py: TAG_FORBIDDEN).
    text = TAG_FORBIDDEN_RE.sub(" ", text).strip()
    return text[:128] or None
