"""One collector process put together: ingest, rules and alerts, dashboard feed, standby lease.

``schoolmon collector run`` is this class and a signal handler.  The pieces are built by their
own modules (collector/sharding.py: the shard's collector and its rules and alerts; lease.py:
the standby; rules/restore.py and rules/snapshot.py: the state across restarts); this module
only knows their order: what must exist before the collector subscribes, what waits for the
lease, and what stops first so that shutdown neither hangs nor loses the last batch.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from collector.config import CollectorConfig
from collector.dashboard_feed import DashboardFeed
from collector.lease import Lease
from collector.rules.engine import RulesEngine
from collector.rules.snapshot import Snapshotter
from collector.sharding import RulesAndAlerts, build_collector, resolve_shard


class AlertStateError(Exception):
    """The alert state database cannot be opened (a path or permission the user must fix)."""


class CollectorService:
    """A collector as ``collector.yaml`` describes it; ``run`` until ``stop`` is set."""

    def __init__(self, config: CollectorConfig, config_path: str | Path, *,
                 evaluate_at: int | None = None) -> None:
        self.config = config
        # Tests evaluate every pass at one instant while ingest runs on wall time.
        self.evaluate_at = evaluate_at
        # The shard's part of the inventory: rules, alerts and the feed see only its districts.
        self.shard = resolve_shard(config, config_path)
        self.collector = build_collector(config, self.shard)
        standby = config.standby.enabled and self.shard.observes
        # A candidate holds the lease once its id stood unchallenged this long (lease.py).
        self.lease = Lease(config, settle=min(1.0, config.rules.interval / 4)) if standby \
            else None
        self.snapshots: list[Snapshotter] = []  # the rules state's writer, once it is built
        self.active = RulesAndAlerts(config, config_path, self.shard, self.collector,
                                     lease=self.lease, restore=self._restore_rules)
        self.feed = DashboardFeed(self.collector.write_points, self.shard.inventory)

    def run(self, stop: threading.Event) -> int:
        """Ingest (and, while active, evaluate) until ``stop``; 1 if the standby took over.

        Raises AlertStateError before anything starts when this process is active at once.
        """
        if self.lease is None:
            self._build_active()
        # Observers are added before start(): a status observer makes the collector subscribe
        # to every agent's status topic.
        self.collector.status_observers.append(self.feed.on_status)
        self.collector.start()
        self.feed.start()
        code = 0
        try:
            if self.lease is None:
                self.active.run(stop)
                stop.wait()
            else:
                self.lease.start()
                if self.lease.acquire(stop):
                    self._build_active()
                    self.active.run(stop)
                    while not stop.wait(0.5):
                        if self.lease.lost.is_set():  # the standby took over (lease.py)
                            code = 1
                            break
        finally:
            self._shutdown(stop)
        return code

    def _shutdown(self, stop: threading.Event) -> None:
        # Stop the writers' retry loops first: while storage fails, the feed's write would
        # otherwise hold the shutdown for its whole retry delay.
        self.collector.stop_event.set()
        stop.set()
        self.feed.stop()
        if self.lease is not None:
            self.lease.release()
        self.collector.stop()
        self.active.close()
        for snapshot in self.snapshots:  # after the last observed batch: a restart replays none
            snapshot.close()

    def _build_active(self) -> None:
        try:
            self.active.build()
        except (OSError, sqlite3.Error) as exc:
            alerts = self.config.alerts
            raise AlertStateError(
                f"alerts.state_path {alerts.state_path if alerts else '?'}: {exc}") from None

    def _restore_rules(self, engine: RulesEngine) -> None:
        """Rebuild the rules state before the first pass (input held meanwhile); snapshot it."""
        from collector.reports.query import InfluxReader
        from collector.rules.restore import SnapshotSource, start_restore
        from collector.rules.snapshot import storage_settled

        if self.evaluate_at is not None:
            at = self.evaluate_at
            engine.pass_clock = lambda: at
        config = self.config
        if not config.rules.restore:
            return
        storage = config.storage
        server = getattr(storage, "server", "influxdb")
        if server != "influxdb":
            logging.getLogger("collector.rules").warning(
                "rules: %s answers no InfluxQL: the state starts empty and fills from new "
                "samples", server)
            return
        snap = None
        if config.rules.snapshot_every > 0:
            where = getattr(storage, "database", None) or getattr(storage, "bucket", "")
            snap = SnapshotSource(Path(config.rules.snapshot), f"{storage.url}|{where}")
            writer = Snapshotter(engine, snap.store, snap.path, config.rules.snapshot_every,
                                 settled=storage_settled(self.collector.storage.health))
            writer.start()
            self.snapshots.append(writer)
        start_restore(engine, InfluxReader(storage), self.collector.stop_event, snap=snap)
