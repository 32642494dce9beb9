"""``schoolmon simulate``: virtual schools publishing realistic samples through the real broker.

A gateway agent per school and a classroom-PC agent per ordinary classroom publish the real
wire format (common/wire.py) on their own topics with their own seq, QoS 1, over one MQTT
connection made from collector.yaml's ``mqtt:`` settings (on a broker with an ACL, the user
needs publish rights on the agents' topics).  What the district looks like is decided up front
by :func:`schoolmon.sim.plan.make_plan` from ``--seed``; ``--inventory-out`` writes the matching
inventory for the collector's rules.  ``--backfill DAYS`` first publishes the last DAYS school
days (and today up to now) as a backlog, as agents that were cut off would; then samples are
published live every ``--interval`` seconds for ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from collector.inventory import Inventory
from common.config import ConfigError, MqttSettings, load_model
from common.wire import AgentIdentity
from schoolmon.sim.district import DistrictSim
from schoolmon.sim.inventory import plan_inventory, write_inventory
from schoolmon.sim.plan import SimulationPlan, make_plan
from schoolmon.sim.publisher import PublishStats, SimPublisher
from schoolmon.sim.spec import SimulationSpec
from schoolmon.sim.timeline import backfill_days, local_date, midnight_ms, school_end_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationResult:
    """What a run published, for the caller to compare with the plan."""

    plan: SimulationPlan
    inventory: Inventory
    days: list[dt.date]  # backfilled school days
    first_ms: int
    last_ms: int  # end of the covered period (exclusive)
    outage_from_ms: int
    stats: PublishStats
    acked: bool


@dataclass(frozen=True)
class RunOptions:
    """How long and how densely to simulate."""

    interval: float = 60.0
    backfill: int = 0  # school days
    duration: float | None = None  # live seconds; None: none after a backfill, else forever
    ack_timeout: float = 300.0


def run_simulation(settings: MqttSettings, plan: SimulationPlan, options: RunOptions, *,
                   now_ms: Callable[[], int] | None = None,
                   stop: threading.Event | None = None) -> SimulationResult:
    """Publish the plan's district; returns when done (or stopped) and acks are in."""
    clock = now_ms or (lambda: int(time.time() * 1000))
    stop = stop or threading.Event()
    tt = plan.spec.timetable
    start = clock()
    days = backfill_days(tt, local_date(tt, start), options.backfill) if options.backfill else []
    first = midnight_ms(tt, days[0]) if days else start
    # Backfill: uplinks fail after school on the last day (that day's tests and classes are
    # complete) and are still down now; live only: from the start.
    outage_from = school_end_ms(tt, days[-1]) if days else start
    district = DistrictSim(plan, options.interval, outage_from)
    publisher = SimPublisher(settings, f"schoolmon-sim-{plan.seed}-{os.getpid()}",
                             stall_timeout=options.ack_timeout, wall_ms=clock)
    publisher.start()
    try:
        agents = district.agents()
        offline = frozenset(plan.offline_agents())
        if days:
            for batch in district.backfill(first, start):
                publisher.publish(batch.who, batch.samples)
            _go_offline(publisher, agents, offline)
        end = _live(district, publisher, options, clock=clock, stop=stop, offline=offline,
                    with_backfill=bool(days))
        acked = publisher.wait_acked(options.ack_timeout)
    finally:
        publisher.stop()
    return SimulationResult(plan, plan_inventory(plan), days, first, max(end, start),
                            outage_from, publisher.stats(), acked)


def _go_offline(publisher: SimPublisher, agents: list[AgentIdentity],
                offline: frozenset[str]) -> None:
    for who in agents:
        if who.agent in offline:
            publisher.status(who, "offline")


def _live(district: DistrictSim, publisher: SimPublisher, options: RunOptions, *,
          clock: Callable[[], int], stop: threading.Event, offline: frozenset[str],
          with_backfill: bool) -> int:
    """Publish every interval until the duration is over; returns the last tick + 1 ms."""
    duration = options.duration
    if duration is None and with_backfill:
        return clock()
    start = clock()
    end = None if not duration else start + int(duration * 1000)
    # Without a backfill the planned agents go offline halfway (or after ten ticks).
    switch = start + int((duration or options.interval * 20) * 500)
    skip: frozenset[str] = offline if with_backfill else frozenset()
    last = start
    while not stop.is_set():
        ticks = district.calendar.grid(last, last + int(options.interval * 1000) + 1)
        ts = next(t for t in ticks if t >= last)
        if end is not None and ts >= end:
            break
        wait = (ts - clock()) / 1000
        if wait > 0 and stop.wait(wait):
            break
        if not skip and ts >= switch:
            _go_offline(publisher, district.agents(), offline)
            skip = offline
        for batch in district.tick(ts, skip):
            publisher.publish(batch.who, batch.samples)
        last = ts + 1
    return last


def plan_json(plan: SimulationPlan) -> bytes:
    """The plan as JSON (the spec as its YAML keys)."""
    data = dataclasses.asdict(plan)
    data["spec"] = plan.spec.model_dump(mode="json")
    return orjson.dumps(data, option=orjson.OPT_INDENT_2)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run the simulator from the command line; one line per problem on stderr."""
    from collector.config import load_collector_config

    config = load_collector_config(args.config)
    spec = load_model(SimulationSpec, args.spec) if args.spec else SimulationSpec()
    if not 1 <= args.schools <= 100_000 or args.interval <= 0 or args.backfill < 0:
        raise ConfigError(["simulate: --schools 1..100000, --interval > 0, --backfill >= 0"])
    plan = make_plan(spec, args.schools, args.seed)
    if args.inventory_out:
        write_inventory(plan_inventory(plan), args.inventory_out)
    if args.plan_out:
        Path(args.plan_out).write_bytes(plan_json(plan))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_a: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    options = RunOptions(interval=args.interval, backfill=args.backfill,
                         duration=args.duration, ack_timeout=args.ack_timeout)
    agents = sum(len(s.agents) for s in plan.schools)
    print(f"simulate: {len(plan.schools)} schools, {agents} agents, seed {plan.seed}",
          flush=True)
    try:
        result = run_simulation(config.mqtt, plan, options, stop=stop)
    except (ConnectionError, TimeoutError) as exc:
        print(f"schoolmon: simulate: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    s = result.stats
    print(f"simulate: published {s.samples} samples in {s.envelopes} envelopes "
          f"({s.resent} resent); {'all' if result.acked else 'NOT all'} acknowledged")
    return 0 if result.acked else 1
