"""Points the dashboards need that no agent sends: ``school_info`` and ``agent_status``.

- ``school_info`` (tags district, school, category, ownership; fields name, classes and, when
  the inventory has them, contracted_mbps, lat, lon): the inventory facts the map, the contract
  line and the per-class figures need. Rewritten every ``interval`` so a retention policy never
  ages them out; dashboards read the all-time last value.
- ``agent_status`` (tags district, school, agent; fields online, state): every retained
  online/offline status an agent publishes (offline is its last will), so "agents offline" is
  exact rather than guessed from silence.

Writes happen in the feed's own thread: a status observer runs in the data session's thread,
which must never wait for InfluxDB (retries while storage is down would stop MQTT keepalives).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from collector.inventory import Inventory
from collector.measurements import AGENT_STATUS, SCHOOL_INFO
from collector.storage.lineprotocol import format_line
from common.wire import AgentIdentity, FieldValue

log = logging.getLogger(__name__)

WriteLines = Callable[[list[str]], bool]


def school_info_lines(inventory: Inventory, ts_ms: int) -> list[str]:
    """One ``school_info`` point per school of the inventory."""
    lines = []
    for school in inventory.schools:
        fields: dict[str, FieldValue] = {"name": school.name, "classes": school.classes}
        if school.contracted_mbps is not None:
            fields["contracted_mbps"] = school.contracted_mbps
        if school.location is not None:
            fields["lat"] = school.location.lat
            fields["lon"] = school.location.lon
        tags = {"district": school.district, "school": school.id,
                "category": school.category, "ownership": school.ownership}
        lines.append(format_line(SCHOOL_INFO.name, tags, fields, ts_ms))
    return lines


def status_line(who: AgentIdentity, status: str, ts_ms: int) -> str:
    """An ``agent_status`` point for one retained status message."""
    tags = {"district": who.district, "school": who.school, "agent": who.agent}
    return format_line(AGENT_STATUS.name, tags, {"online": status == "online", "state": status},
                       ts_ms)


class DashboardFeed:
    """Writes school_info periodically and agent_status as statuses arrive, in its own thread."""

    def __init__(self, write: WriteLines, inventory: Inventory | None, *,
                 now: Callable[[], float] = time.time, interval: float = 3600.0,
                 max_queued: int = 10_000) -> None:
        self._write = write
        self._inventory = inventory
        self._now = now
        self._interval = interval
        self._queue: queue.Queue[str] = queue.Queue(maxsize=max_queued)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)
        self._next_info = 0.0
        self.dropped_statuses = 0

    def on_status(self, who: AgentIdentity, status: str, ts_ms: int) -> None:
        """Collector status observer: queue the point (never blocks paho's thread)."""
        try:
            self._queue.put_nowait(status_line(who, status, ts_ms))
        except queue.Full:  # storage down for long with agents flapping: keep the collector up
            self.dropped_statuses += 1

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current write."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def step(self, wait: float) -> int:
        """Write school_info if due, then the queued statuses (waiting up to ``wait`` s for one).

        Returns the points written. Called in a loop by the thread; tests call it directly.
        """
        written = 0
        now = self._now()
        if self._inventory is not None and now >= self._next_info:
            lines = school_info_lines(self._inventory, int(now * 1000))
            if lines and self._write(lines):
                written += len(lines)
            self._next_info = now + self._interval
        batch: list[str] = []
        try:
            batch.append(self._queue.get(timeout=wait))
            while len(batch) < 1000:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        if batch and self._write(batch):
            written += len(batch)
        return written

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(wait=1.0)
            except Exception:  # a bug here must not end the feed silently
                log.exception("dashboard feed failed; retrying")
                self._stop.wait(5.0)
