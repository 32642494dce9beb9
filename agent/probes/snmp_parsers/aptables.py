"""Access-point tables of wireless controllers (Huawei, H3C, Ruijie, Cisco) and their parsing.

Each vendor's table is described by one :class:`ApTable` (the way Home Assistant describes SNMP
tables): where the rows are, which column names the AP, which says its state and which value
of it means "online", and where its client count is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from agent.probes.snmp_parsers import VarBind, as_int, as_text, column_rows

ApVendor = Literal["huawei", "h3c", "ruijie", "cisco"]


@dataclass(frozen=True)
class ApTable:
    """Where one vendor keeps its APs: table entry OID and the columns the probe reads."""

    vendor: ApVendor
    mib: str  # MIB module and table name, for people reading logs and docs
    entry_oid: str  # the table's ...Entry; columns are entry_oid.<n>
    name_column: int
    state_column: int
    online_values: frozenset[int]  # state values that mean the AP serves clients
    # Full OID of a client-count column whose rows are indexed by the AP's index, possibly
    # followed by more sub-ids (Cisco counts per radio: <AP MAC>.<slot>); those are summed.
    clients_oid: str | None

    @property
    def name_oid(self) -> str:
        """The AP name column."""
        return f"{self.entry_oid}.{self.name_column}"

    @property
    def state_oid(self) -> str:
        """The AP state column."""
        return f"{self.entry_oid}.{self.state_column}"

    def columns(self) -> dict[str, str]:
        """The columns to walk: {"name"|"state"|"clients": OID}."""
        cols = {"name": self.name_oid, "state": self.state_oid}
        if self.clients_oid:
            cols["clients"] = self.clients_oid
        return cols


AP_TABLES: Final[dict[str, ApTable]] = {
    # hwWlanApTable, indexed by AP MAC: hwWlanApName .4, hwWlanApRunState .6
    # (8 = normal), hwWlanApOnlineUserNum .44.
    "huawei": ApTable("huawei", "HUAWEI-WLAN-AP-MIB::hwWlanApTable",
                      "1.3.6.1.4.1.2011.6.139.13.3.3.1", 4, 6, frozenset({8}),
                      "1.3.6.1.4.1.2011.6.139.13.3.3.1.44"),
    # hh3cDot11APObjectStatusTable: hh3cDot11APOperationStatus .4 (5 = run),
    # hh3cDot11APTemplateNameOfAP .5 (the AP's configured name).  No client count in it.
    "h3c": ApTable("h3c", "HH3C-DOT11-APMT-MIB::hh3cDot11APObjectStatusTable",
                   "1.3.6.1.4.1.25506.2.75.2.1.1.1", 5, 4, frozenset({5}), None),
    # Ruijie AP config table: AP name .2, station count .34, state .48 (1 = online).
    "ruijie": ApTable("ruijie", "RUIJIE-AC-MGMT-MIB AP table",
                      "1.3.6.1.4.1.4881.1.1.10.2.56.2.1.1.1", 2, 48, frozenset({1}),
                      "1.3.6.1.4.1.4881.1.1.10.2.56.2.1.1.1.34"),
    # bsnAPTable, indexed by AP MAC: bsnAPName .3, bsnAPOperationStatus .6 (1 = associated);
    # clients per radio in bsnAPIfTable bsnApIfNoOfUsers (.15), indexed by AP MAC + slot.
    "cisco": ApTable("cisco", "AIRESPACE-WIRELESS-MIB::bsnAPTable",
                     "1.3.6.1.4.1.14179.2.2.1.1", 3, 6, frozenset({1}),
                     "1.3.6.1.4.1.14179.2.2.2.1.15"),
}


@dataclass(frozen=True)
class ApState:
    """One AP as the controller reports it (clients None when the table has no count)."""

    name: str
    online: bool
    clients: int | None


def parse_ap_table(table: ApTable, walks: Mapping[str, Sequence[VarBind]]) -> list[ApState]:
    """APs from the walked columns (``walks`` keyed like ``table.columns()``), sorted by name.

    A row without a usable name is named by its index; a state that is missing or not a
    number counts as offline.  Two rows with one name (a misconfigured controller) merge:
    online if either is, clients summed.
    """
    names = column_rows(walks.get("name", ()), table.name_oid)
    states = column_rows(walks.get("state", ()), table.state_oid)
    clients = (column_rows(walks.get("clients", ()), table.clients_oid)
               if table.clients_oid else {})
    indexes = set(names) | set(states)
    counts = _clients_per_ap(indexes, clients)
    aps: dict[str, ApState] = {}
    for index in indexes:
        name = as_text(names.get(index)) or f"index-{index}"[:128]
        state = as_int(states.get(index))
        count = _plausible(counts.get(index, 0)) if table.clients_oid else None
        ap = ApState(name, state in table.online_values, count)
        if name in aps:
            old = aps[name]
            ap = ApState(name, old.online or ap.online,
                         None if ap.clients is None or old.clients is None
                         else _plausible(old.clients + ap.clients))
        aps[name] = ap
    return [aps[name] for name in sorted(aps)]


# No AP serves more stations than this (802.11 allows 2,007 associations per radio); a larger
# count is a broken or hostile controller: no count rather than a wrong one.
MAX_CLIENTS = 10_000


def _plausible(count: int | None) -> int | None:
    return count if count is not None and 0 <= count <= MAX_CLIENTS else None


def _clients_per_ap(indexes: set[str], clients: Mapping[str, object]) -> dict[str, int]:
    # Each client row belongs to the AP whose index is its longest matching prefix.
    totals: dict[str, int] = {}
    for row, value in clients.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_CLIENTS:
            continue  # not a count: the row is skipped, the AP's other radios still count
        parts = row.split(".")
        for k in range(len(parts), 0, -1):
            owner = ".".join(parts[:k])
            if owner in indexes:
                totals[owner] = totals.get(owner, 0) + max(value, 0)
                break
    return totals


def with_expected(aps: Sequence[ApState], expected: Iterable[str],
                  counts_clients: bool = True) -> list[ApState]:
    """Add the expected APs (the inventory's) the controller does not list, as offline.

    An AP the controller has forgotten (deleted, never joined since a reboot) is as much out of
    service as one listed as down; some controllers (Ruijie) list only online APs.  It serves
    no clients: 0, when the table counts clients at all.
    """
    known = {ap.name for ap in aps}
    zero = 0 if counts_clients else None
    missing = [ApState(name, False, zero) for name in dict.fromkeys(expected)
               if name not in known]
    return sorted([*aps, *missing], key=lambda ap: ap.name)
