"""IF-MIB: the interface rows of a device from walks of ifTable and ifXTable columns."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from agent.probes.snmp_parsers import VarBind, as_int, as_text, column_rows

SYS_UPTIME: Final = "1.3.6.1.2.1.1.3.0"

_IF = "1.3.6.1.2.1.2.2.1"  # ifEntry
_IFX = "1.3.6.1.2.1.31.1.1.1"  # ifXEntry
# The columns walked, by the name parse_if_table reads them under.
IF_COLUMNS: Final[dict[str, str]] = {
    "ifDescr": f"{_IF}.2",
    "ifSpeed": f"{_IF}.5",
    "ifOperStatus": f"{_IF}.8",
    "ifInOctets": f"{_IF}.10",
    "ifInErrors": f"{_IF}.14",
    "ifOutOctets": f"{_IF}.16",
    "ifOutErrors": f"{_IF}.20",
    "ifName": f"{_IFX}.1",
    "ifHCInOctets": f"{_IFX}.6",
    "ifHCOutOctets": f"{_IFX}.10",
    "ifHighSpeed": f"{_IFX}.15",
}

_OPER_UP = 1
_SPEED_SATURATED = 2**32 - 1  # ifSpeed's "faster than I can say": ifHighSpeed has the truth


@dataclass(frozen=True)
class IfRow:
    """One interface as read: counters are cumulative octets of ``counter_bits`` width."""

    index: str
    name: str
    up: bool | None
    speed_mbps: float | None
    in_octets: int | None
    out_octets: int | None
    counter_bits: int  # 64 for ifHCIn/OutOctets, 32 for the ifTable fallback
    in_errors: int | None
    out_errors: int | None


def _index_key(index: str) -> tuple[int, ...]:
    return tuple(int(p) for p in index.split(".") if p.isdigit())


def parse_if_table(walks: Mapping[str, Sequence[VarBind]]) -> list[IfRow]:
    """Interface rows from the walked columns (``walks`` keyed like IF_COLUMNS; any may be absent).

    Names come from ifName, else ifDescr, else ``if<index>``; a name two rows share gets
    ``#<index>`` so each interface stays its own series.  64-bit counters are used for a row
    only when both directions are there, else the 32-bit ones.
    """
    col = {name: column_rows(walks.get(name, ()), oid) for name, oid in IF_COLUMNS.items()}
    indexes = set(col["ifDescr"]) | set(col["ifName"]) | set(col["ifOperStatus"])
    rows = []
    for index in sorted(indexes, key=_index_key):
        def num(name: str, i: str = index) -> int | None:
            return _counter(as_int(col[name].get(i)))

        name = (as_text(col["ifName"].get(index)) or as_text(col["ifDescr"].get(index))
                or _fit(f"if{index}"))
        in_octets, out_octets = num("ifHCInOctets"), num("ifHCOutOctets")
        bits = 64
        if in_octets is None or out_octets is None:
            bits, in_octets, out_octets = 32, num("ifInOctets"), num("ifOutOctets")
        status = num("ifOperStatus")
        rows.append(IfRow(
            index=index, name=name, up=None if status is None else status == _OPER_UP,
            speed_mbps=_speed_mbps(num("ifHighSpeed"), num("ifSpeed")),
            in_octets=in_octets, out_octets=out_octets, counter_bits=bits,
            in_errors=num("ifInErrors"), out_errors=num("ifOutErrors"),
        ))
    return _unique_names(rows)


# Faster than any port that exists (10 Tbit/s): a larger or negative speed is a device bug, and
# a wrong speed would also wrongly bound the counter-wrap check (counters.rate_bps).
_MAX_SPEED_MBPS = 10_000_000


def _speed_mbps(high_speed: int | None, speed: int | None) -> float | None:
    if high_speed and 0 < high_speed <= _MAX_SPEED_MBPS:
        return float(high_speed)  # Mbit/s; 0 means "unknown" or "below 1 Mbit/s": ifSpeed says
    if speed and 0 < speed < _SPEED_SATURATED:
        return speed / 1e6
    return None


def _counter(value: int | None) -> int | None:
    """A value as a device sent it, None when no SNMP type allows it (negative Counter64, past
    2**64): the probe's ValueGuard then drops what does not fit the wire (int64)."""
    return value if value is None or -(2**31) <= value < 2**64 else None


def _unique_names(rows: list[IfRow]) -> list[IfRow]:
    seen: dict[str, int] = {}
    for row in rows:
        seen[row.name] = seen.get(row.name, 0) + 1
    return [row if seen[row.name] == 1
            else replace(row, name=_fit(f"{row.name[:110]}#{row.index}"))
            for row in rows]


def _fit(name: str) -> str:
    """At most 128 characters (the wire's tag limit); a longer name keeps a digest of itself,
    so names that differ only past the cut stay different."""
    if len(name) <= 128:
        return name
    return f"{name[:119]}~{hashlib.sha1(name.encode()).hexdigest()[:8]}"
