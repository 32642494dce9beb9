"""The sample kinds agents send, declared once: tags, fields and field types (Napalm's models.py).

The validator (common/wire.py) refuses a declared field of another type; the readers (rules,
alerts) ask a sample for a declared field through its typed view (``Sample.number``, ``flag``,
``text``); the dashboards' test checks every queried field against these declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

# The type of a field on the wire and in InfluxDB: every number is written as a float
# (storage/lineprotocol.py), so ints and floats are one type; a bool or a string is another, and
# InfluxDB refuses a point whose field changes type.
FieldType = Literal["number", "bool", "string"]
_N: Final = "number"
_B: Final = "bool"
_S: Final = "string"


# Inclusive bounds of a number field.  A value outside is no measurement but a broken or hostile
# agent, and would bend every percentile, sum and alert computed from it.
Bounds = tuple[float, float]
NON_NEGATIVE: Final[Bounds] = (0.0, float(2**63))
PERCENT: Final[Bounds] = (0.0, 100.0)
BPS: Final[Bounds] = (0.0, 1e13)  # 10 Tbit/s: beyond any school or district link
MBPS: Final[Bounds] = (0.0, 1e7)
MS: Final[Bounds] = (0.0, 3.6e6)  # an hour: no round trip is longer
PJLINK_ERR: Final[Bounds] = (0.0, 2.0)  # 0 ok, 1 warning, 2 error


@dataclass(frozen=True)
class KindSpec:
    """What one sample kind (one InfluxDB measurement) may carry: tag keys, fields and types."""

    tags: frozenset[str]
    fields: Mapping[str, FieldType]
    # Bounds of number fields; a declared number field not listed here must be non-negative.
    bounds: Mapping[str, Bounds] = field(default_factory=lambda: MappingProxyType({}))

    def range_of(self, name: str) -> Bounds | None:
        """The bounds of a declared number field (None for other fields)."""
        if self.fields.get(name) != "number":
            return None
        return self.bounds.get(name, NON_NEGATIVE)


def _spec(tags: str, fields: dict[str, FieldType],
          bounds: dict[str, Bounds] | None = None) -> KindSpec:
    return KindSpec(frozenset(tags.split()), MappingProxyType(fields),
                    MappingProxyType(bounds or {}))


def _same(names: str, bounds: Bounds) -> dict[str, Bounds]:
    return dict.fromkeys(names.split(), bounds)


def _numbers(names: str) -> dict[str, FieldType]:
    return dict.fromkeys(names.split(), "number")


# Field sets list what collectors, rules and dashboards know, with their types (the validator
# refuses a declared field of another type); other well-formed field names are accepted too, so
# a newer agent can add a field without breaking an older collector. Napalm's models.py, here.
KINDS: Final[dict[str, KindSpec]] = {
    "iface": _spec("iface role",
                   {**_numbers("rx_bps tx_bps link_mbps errors drops"), "up": _B},
                   {**_same("rx_bps tx_bps", BPS), "link_mbps": MBPS}),
    "host": _spec("", _numbers("uptime_s cpu_pct mem_pct disk_pct"),
                  _same("cpu_pct mem_pct disk_pct", PERCENT)),
    "reach": _spec("target target_role method",
                   {"up": _B, **_numbers("rtt_ms rtt_min_ms rtt_max_ms loss_pct jitter_ms")},
                   {**_same("rtt_ms rtt_min_ms rtt_max_ms jitter_ms", MS), "loss_pct": PERCENT}),
    "netdev_if": _spec("device ifname source",
                       {**_numbers("in_bps out_bps speed_mbps in_errors out_errors"), "up": _B},
                       {**_same("in_bps out_bps", BPS), "speed_mbps": MBPS}),
    "netdev": _spec("device source", {"up": _B, "uptime_s": _N}),
    "ap": _spec("ap controller", {"online": _B, "clients": _N}, {"clients": (0.0, 1e5)}),
    "wifi": _spec("classroom ssid bssid band",
                  {"rssi_dbm": _N, "channel": _N, "connected": _B},
                  {"rssi_dbm": (-150.0, 30.0), "channel": (0.0, 300.0)}),
    "av": _spec("device classroom device_type", {
        "online": _B, "power": _S,
        # err_*: PJLink's 0 ok, 1 warning, 2 error
        **_numbers("lamp_hours filter_hours rtt_ms uptime_s err_fan err_lamp err_temp "
                   "err_cover err_filter err_other")},
        {"rtt_ms": MS, **_same("err_fan err_lamp err_temp err_cover err_filter err_other",
                               PJLINK_ERR)}),
    # method "browser": a teacher's test from a classroom PC (agent/speedtest/classroom.py),
    # which measures the room's own Wi-Fi and switch too; absent: the agent's own test.
    "speedtest": _spec("server", {
        **_numbers("down_mbps up_mbps rtt_ms jitter_ms bytes duration_s"),
        "method": _S, "classroom": _S},
                       {**_same("down_mbps up_mbps", MBPS), **_same("rtt_ms jitter_ms", MS),
                        "duration_s": (0.0, 86400.0)}),
    "agent": _spec("", {
        **_numbers("rss_mb cpu_pct spool_depth spool_bytes dropped_total probe_errors"),
        # The fleet view: release, agent.yaml fingerprint, process start (unix seconds).
        "version": _S, "config_hash": _S, "started_s": _N}),
}


def declared(kind: str, name: str, field_type: FieldType) -> str:
    """``name``, checked to be a declared ``field_type`` field of ``kind`` (KeyError if not)."""
    spec = KINDS.get(kind)
    if spec is None or spec.fields.get(name) != field_type:
        raise KeyError(f"{kind}.{name} is not a declared {field_type} field")
    return name
