"""The measurements the collector writes itself, declared once: names, tags, fields and types.

Agents' sample kinds are declared in ``common/kinds.py`` (``KINDS``); these are the collector's
own points. The writers (rules/results.py, dashboard_feed.py, validate.py), the report's reader
(reports/load.py) and the dashboards (dashboards/boards/*) take names from here, and tests check
every written point and every dashboard query against these declarations. Numbers are written
as floats (storage/lineprotocol.py), so ``number`` fields are floats in InfluxDB.

Imports nothing from the collector (only common/kinds.py, for the field types agents' samples
use too): the dashboards build from it without the collector's dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from common.kinds import FieldType


@dataclass(frozen=True)
class Measurement:
    """One measurement: its name, tag keys and fields with their types."""

    name: str
    tags: frozenset[str]
    fields: Mapping[str, FieldType]
    doc: str

    def field(self, name: str) -> str:
        """``name``, checked to be one of this measurement's fields (KeyError if not)."""
        if name not in self.fields:
            raise KeyError(f"{self.name} has no field {name!r}")
        return name

    def tag(self, name: str) -> str:
        """``name``, checked to be one of this measurement's tag keys (KeyError if not)."""
        if name not in self.tags:
            raise KeyError(f"{self.name} has no tag {name!r}")
        return name


def _m(name: str, tags: str, fields: dict[str, FieldType], doc: str) -> Measurement:
    return Measurement(name, frozenset(tags.split()), MappingProxyType(fields), doc)


# What a district share counts (compliance ``unit``): its counts are fields named after it.
SHARE_UNITS: Final = ("schools", "classrooms")


def share_fields(unit: str) -> tuple[str, str, str]:
    """The count fields of a district share: with data, met, without data."""
    return unit, f"{unit}_met", f"{unit}_no_data"


COMPLIANCE: Final = _m(
    "compliance", "policy rule metric scope district school classroom",
    {"value": "number", "target": "number", "met": "bool", "state": "string",
     **{f: "number" for unit in SHARE_UNITS for f in share_fields(unit)}},
    "One rule checked for one school, classroom or district (rules/results.py).")
SCHOOL_STATUS: Final = _m(
    "school_status", "district school category ownership",
    {"access_state": "string", "devices_up": "number", "devices_down": "number",
     "access_mbps": "number", "tier_mbps": "number", "per_class_mbps": "number",
     "isp_pct": "number", "multimedia_ratio": "number", "wifi_coverage": "number",
     "internet_up": "bool", "agents_fresh": "number", "agents": "number"},
    "Each school at each rules pass: access_mbps is the rules' statistic (nearest-rank p90 by "
    "default) of the window's speed tests and tier_mbps its tier, the figures the dashboards "
    "show.")
SCHOOL_INFO: Final = _m(
    "school_info", "district school category ownership",
    {"name": "string", "classes": "number", "contracted_mbps": "number", "lat": "number",
     "lon": "number"},
    "The inventory facts dashboards need, rewritten every interval (dashboard_feed.py).")
AGENT_STATUS: Final = _m(
    "agent_status", "district school agent",
    {"online": "bool", "state": "string"},
    "Every retained online/offline status of an agent; offline is its last will.")
REJECT: Final = _m(
    "schoolmon_reject", "cause collector district school agent",
    {"count": "number", "detail": "string"},
    "One point per rejected message, tagged with its stable cause (validate.py).")
AGENT_CLOCK: Final = _m(
    "agent_clock", "district school agent",
    {"offset_ms": "number", "applied_ms": "number", "corrected": "bool"},
    "An agent's clock offset (collector minus agent, ms) and the correction applied to its "
    "timestamps (clocks.py): for clocks off by over half the tolerance, once a minute.")
RULES_LATE: Final = _m(
    "rules_late", "district school agent",
    {"min_ts_ms": "number", "max_ts_ms": "number"},
    "A stored batch holding samples over a minute older than its receipt (a spooled backlog), "
    "at the receipt time, with its samples' time range (late.py): what a rules restore from a "
    "state snapshot reads back besides the samples newer than the snapshot.")
COLLECTOR_STATS: Final = _m(
    "collector_stats", "collector",
    {"messages_accepted": "number", "queue_bytes": "number", "queue_peak_bytes": "number",
     "probation_peak_bytes": "number", "resends_joined": "number", "resends_stored": "number",
     "messages_shed": "number", "points_written": "number", "write_retries": "number",
     "points_quarantined": "number", "storage_failing": "bool"},
    "A collector's own counters since its start, every write.stats_interval (subscriber.py): "
    "what its write queue holds, the resends it recognised, the messages it left to the "
    "agents' resend (shed), its writes and their retries (Telegraf's internal plugin, ours).")

MEASUREMENTS: Final[Mapping[str, Measurement]] = MappingProxyType(
    {m.name: m for m in (COMPLIANCE, SCHOOL_STATUS, SCHOOL_INFO, AGENT_STATUS, REJECT,
                         AGENT_CLOCK, RULES_LATE, COLLECTOR_STATS)})
