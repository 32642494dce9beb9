"""The fleet section: every agent with its release, config fingerprint, last contact and state.

States as Giga's school-connectivity maps count schools: live, at risk, dropped off.  The
thresholds are ours: an hour covers a reboot or a short uplink cut (the agent delivers what it
spooled when it is back); a week covers a school holiday, within the spool's 14 days.
"""

from __future__ import annotations

from typing import Final

from collector.inventory import Inventory
from collector.reports.model import FleetRow, FleetState
from collector.reports.query import InfluxReader
from common.kinds import declared

LIVE_WITHIN_MS: Final = 3600 * 1000
AT_RISK_WITHIN_MS: Final = 7 * 86400 * 1000
STATE_ORDER: Final[tuple[FleetState, ...]] = ("dropped_off", "at_risk", "live")

# Field names checked against the declaration at import (common/kinds.py).
_VERSION = declared("agent", "version", "string")
_CONFIG = declared("agent", "config_hash", "string")
_RSS = declared("agent", "rss_mb", "number")  # in every agent sample, older releases' too


def fleet_state(last_ms: int | None, now_ms: int) -> FleetState:
    """live (heard within 1 h), at risk (within 7 days) or dropped off (older, or never)."""
    if last_ms is None or now_ms - last_ms > AT_RISK_WITHIN_MS:
        return "dropped_off"
    return "live" if now_ms - last_ms <= LIVE_WITHIN_MS else "at_risk"


def read_fleet(reader: InfluxReader, now_ms: int,
               inventory: Inventory | None = None) -> list[FleetRow]:
    """Every agent's newest sample before ``now_ms``; inventory agents never heard included.

    Sorted worst state first, then by release and school: who to chase, and who is not
    upgraded yet.
    """
    # One raw row per agent (ORDER BY time DESC LIMIT 1), not last() per field: with several
    # selectors InfluxDB reports time 0, and the time is the point here.
    series = reader.query(
        f'SELECT "{_RSS}", "{_VERSION}", "{_CONFIG}" FROM "agent" WHERE time <= {now_ms}ms '
        'GROUP BY "school", "agent" ORDER BY time DESC LIMIT 1')
    rows: dict[str, FleetRow] = {}
    for s in series:
        if not s.rows:
            continue
        row, agent = s.rows[0], s.tags.get("agent", "")
        last = int(row["time"])
        rows[agent] = FleetRow(s.tags.get("school", ""), agent, str(row.get(_VERSION) or ""),
                               str(row.get(_CONFIG) or ""), last, fleet_state(last, now_ms))
    for entry in inventory.agents if inventory is not None else []:
        if entry.id not in rows:
            rows[entry.id] = FleetRow(entry.school, entry.id, "", "", None, "dropped_off")
    return sorted(rows.values(), key=lambda r: (STATE_ORDER.index(r.state), r.version,
                                                r.school, r.agent))
