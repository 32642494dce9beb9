"""Storage condition: the collector's storage has refused or failed every write for a while."""

from __future__ import annotations

import socket
from collections.abc import Callable

from collector.alerts.model import Alert, AlertKey, ClearLog
from collector.alerts.settings import AlertRulesSettings
from collector.storage import StorageHealth

# The notification group of collector-side alerts: they belong to no school.
COLLECTOR_GROUP = "collector"


class StorageWatch:
    """Fires ``storage_refusing`` once writes have failed for ``storage_refusing_after``.

    It reads the writer's health (``ResilientWriter.health``), never InfluxDB: the alert must
    reach district IT by mail exactly when storage is what is broken.
    """

    def __init__(self, rules: AlertRulesSettings, clears: ClearLog) -> None:
        self.rules = rules
        self.clears = clears
        self.source: Callable[[], StorageHealth] | None = None
        self.subject = socket.gethostname()
        self._firing = False

    def evaluate(self, now_ms: int) -> list[Alert]:
        """The alert while storage has been failing long enough; healthy evidence otherwise."""
        if self.source is None:
            return []
        health = self.source()
        since = health.failing_since_ms
        if since is None:
            self.clears.clear("storage_refusing", COLLECTOR_GROUP, self.subject, self._firing)
            self._firing = False
            return []
        if now_ms - since < self.rules.storage_refusing_after * 1000:
            return []
        self._firing = True
        figures: dict[str, float | str] = {
            "storage_cause": health.cause, "storage_detail": health.message,
            "failures_total": float(health.failures_total)}
        return [Alert(AlertKey("storage_refusing", COLLECTOR_GROUP, self.subject), "critical",
                      "", since, {}, figures)]
