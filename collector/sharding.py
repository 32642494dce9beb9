"""Roles and district shards: which districts a collector owns and what it does with their data.

A collector owns the districts ``districts:`` names (ids or globs, default all). Its role says
what it does with their messages (docs/scaling.md, "Roles and shards"):

- ``ingest`` stores and acks them in the share group, one district filter each
  (``$share/{group}/{prefix}/{district}/+/+/data``): collectors owning a district share its
  messages, each stored once.
- ``rules`` subscribes to them without sharing and only observes: no sample is written, no agent
  is acked (the ingest collectors do both); it writes its own compliance points and sends alerts.
- ``all`` does both. When it runs rules or alerts it does not share either: a share group splits
  each district's messages among its members, and rules computed on a part are wrong. Sharing
  would also be wrong across shards: two collectors of different shards that both own a district
  would split it, so only ingest-only collectors share.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from collector.alerts.engine import AlertEngine
from collector.config import CollectorConfig, CollectorRole
from collector.inflight import Inbound
from collector.inventory import Inventory, UnmatchedDistrictError, load_inventory
from collector.lease import Lease
from collector.rules import RulesEngine, load_policies
from collector.rules.scope import check_zones
from collector.subscriber import Collector, ack_deliveries, build_writer
from collector.validate import Accepted
from common.config import ConfigError
from common.wire import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """What one collector owns and does, resolved against the inventory."""

    role: CollectorRole
    districts: tuple[str, ...] | None  # None: every district (no restriction)
    inventory: Inventory | None  # restricted to the districts; None: no inventory configured
    observes: bool  # runs rules or alerts on the data it receives

    def data_filters(self, config: CollectorConfig) -> list[str]:
        """The data subscriptions: per owned district; shared only by ingest-only collectors."""
        topics = Topics(config.mqtt.topic_prefix)
        shared = not self.observes and config.mqtt.protocol == "v5"
        group = config.mqtt.share_group if shared else None
        return [topics.data_filter(d, group) for d in self.districts or ("+",)]

    def status_filters(self, config: CollectorConfig) -> list[str]:
        """The owned districts' agent statuses (never shared: the rules need every one)."""
        topics = Topics(config.mqtt.topic_prefix)
        return [topics.status_filter(d) for d in self.districts or ("+",)]


def resolve_shard(config: CollectorConfig, config_path: str | Path) -> Shard:
    """The collector's shard; raises ConfigError ('file: districts.N: why') for bad settings."""
    inventory = (load_inventory(Path(config_path).parent / config.inventory)
                 if config.inventory else None)
    rules_on = bool(config.inventory and config.policies and config.rules.enabled)
    runs_rules = rules_on or config.alerts is not None
    if config.role == "rules" and not (config.inventory and runs_rules):
        raise ConfigError([f"{config_path}: role: 'rules' needs an inventory and policies or "
                           "alerts (it stores nothing else)"])
    districts: tuple[str, ...] | None = None
    if config.districts is not None:
        if inventory is None:
            raise ConfigError([f"{config_path}: districts: needs an inventory to match against"])
        try:
            inventory = inventory.restricted_to(config.districts)
        except UnmatchedDistrictError as exc:
            raise ConfigError([f"{config_path}: districts.{exc.index}: {exc}"]) from None
        districts = tuple(d.id for d in inventory.districts)
    observes = runs_rules and config.role != "ingest"
    return Shard(config.role, districts, inventory, observes)


def build_shard_rules_engine(config: CollectorConfig, config_path: str | Path,
                             shard: Shard) -> RulesEngine | None:
    """build_rules_engine (collector/rules) on the shard's part of the inventory."""
    if not shard.observes or shard.inventory is None or not config.policies \
            or not config.rules.enabled:
        return None
    profiles = load_policies(config.policies, Path(config_path).parent, origin=str(config_path))
    inventory_path = str(Path(config_path).parent / str(config.inventory))
    check_zones(shard.inventory, inventory_path)
    return RulesEngine(shard.inventory, profiles, config.rules, origin=inventory_path)


class ObservingCollector(Collector):
    """Role ``rules``: validates and observes its districts' messages; stores and acks none.

    The MQTT PUBACK still goes back (the broker must not resend to an observer); the agent's
    ack is the ingest collectors' job, after their write.
    """

    def writer_count(self) -> int:
        """One: it writes nothing, and its observers must see the batches in their order."""
        return 1

    def _deliver(self, batch: list[Inbound], ticket: int) -> None:
        session = self._session
        assert session is not None
        ack_deliveries(session, self.queue.done(batch))
        with self._deliver_lock:
            self.accepted_messages += sum(isinstance(i.result, Accepted) for i in batch)
            self._observe(batch)
        self._turns.done(ticket)

    def _ack_stored_resend(self, item: Inbound) -> None:
        # A resend of a batch already observed: the broker's PUBACK only.
        if self._session is not None:
            ack_deliveries(self._session, item.deliveries)


def build_collector(config: CollectorConfig, shard: Shard) -> Collector:
    """The collector class and subscriptions the role asks for (nothing connects yet)."""
    cls = ObservingCollector if shard.role == "rules" else Collector
    return cls(config, build_writer(config), data_filters=shard.data_filters(config),
               status_filters=shard.status_filters(config))


class RulesAndAlerts:
    """What only the active collector of a shard runs: the rules and alert engines.

    Without a standby it is built before the collector connects (as it always was); with one,
    when the lease is taken (collector/lease.py): its rules state is then restored from storage,
    the last active's alert state installed, and the retained agent statuses asked for again.
    """

    def __init__(self, config: CollectorConfig, config_path: str | Path, shard: Shard,
                 collector: Collector, *, restore: Callable[[RulesEngine], None],
                 lease: Lease | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.shard = shard
        self.collector = collector
        self.restore = restore
        self.lease = lease
        self.engine: RulesEngine | None = None
        self.alert_engine: AlertEngine | None = None
        self._alerts: threading.Thread | None = None

    def build(self) -> None:
        """Build both engines and make them observers; raises ConfigError or OSError."""
        config = self.config
        engine = build_shard_rules_engine(config, self.config_path, self.shard)
        if config.alerts is not None and self.shard.observes:
            if self.lease is not None:
                self.lease.install_alert_state(config.alerts.state_path)
            alert_engine = AlertEngine(
                config.alerts, self.shard.inventory or Inventory(districts=[]),
                config.alerts.rules, default_timetable=config.rules.default_timetable)
            # The storage alert reads the writer's health, never InfluxDB: it is mailed while
            # InfluxDB refuses writes.
            alert_engine.tracker.watch_storage(self.collector.storage.health)
            alert_engine.tracker.watch_clocks(self.collector.clocks.snapshot)
            self.alert_engine = alert_engine
        if engine is not None:
            self.restore(engine)  # holds live input until the state is back
            self.engine = engine
        for observer in (engine, self.alert_engine):
            if observer is not None:
                self.collector.observers.append(observer.observe)
                self.collector.status_observers.append(observer.observe_status)

    def run(self, stop: threading.Event) -> None:
        """Start the periodic pass and the alert ticks (threads)."""
        coll = self.collector
        if self.engine is not None:
            if self.lease is not None:  # taking over: a pass once restored, not an interval on
                engine = self.engine
                threading.Thread(target=_pass_then_periodic, args=(engine, coll), name="rules",
                                 daemon=True).start()
                coll.resubscribe_statuses()  # the held engines get every agent's status again
            else:
                self.engine.start_periodic(coll.write_points, coll.stop_event)
        if self.alert_engine is not None:
            if self.lease is not None and self.engine is None:
                coll.resubscribe_statuses()
            self._alerts = threading.Thread(target=self._tick_alerts, args=(stop,),
                                            name="alerts", daemon=True)
            self._alerts.start()

    def _tick_alerts(self, stop: threading.Event) -> None:
        engine, lease, config = self.alert_engine, self.lease, self.config
        assert engine is not None and config.alerts is not None
        every = 10.0 if lease is None else min(10.0, config.rules.interval)
        while not stop.is_set():
            try:
                engine.tick()
                if lease is not None:  # what was mailed, for the standby (lease.py)
                    lease.publish_alert_state(config.alerts.state_path)
            except Exception:  # a bug in one tick must not end alerting for good
                log.exception("alert tick failed")
            stop.wait(every)

    def close(self) -> None:
        """After stop: let the alert thread finish its tick, close the state file."""
        if self._alerts is not None:
            self._alerts.join(timeout=60)
        if self.alert_engine is not None:
            self.alert_engine.close()


def _pass_then_periodic(engine: RulesEngine, collector: Collector) -> None:
    stop = collector.stop_event
    while not engine.ready.wait(0.5):
        if stop.is_set():
            return
    lines = engine.pass_lines(engine.pass_clock())
    if lines and not collector.write_points(lines):
        return
    log.info("rules: first pass after takeover: %d points", len(lines))
    engine.run_periodic(collector.write_points, stop)
