"""Done means: a rules collector SIGKILLed and restarted gives, in its first pass, every school,
classroom, rule and policy the same compliance point (and school_status) as a collector that
never stopped, both evaluating at the same instant: its state is rebuilt from InfluxDB, from its
state snapshot plus what was stored after it (the backfill: a backlog found by the journal the
writer stores), and with no snapshot at all (the full replay)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.config import CollectorConfig
from collector.storage.lineprotocol import sample_line
from common.kinds import KINDS
from common.wire import AgentIdentity, Sample
from schoolmon.sim.inventory import plan_inventory, write_inventory
from schoolmon.sim.plan import SimulationPlan, make_plan
from schoolmon.sim.spec import SimulationSpec
from schoolmon.simulate import RunOptions, run_simulation
from tests.conftest import (
    Services,
    influx_query,
    influx_rows,
    schoolmon_cmd,
    start_services,
    wait_until,
)

pytestmark = pytest.mark.integration

POLICIES = ["cn-moe-2017", "cn-moe-13fyp", "guangzhou-2017", "schoolmon-operations"]
PASS = b"rules: "  # a pass logs "rules: N points in S s"
SCHOOLS = 10


def collector_yaml(tmp: Path, name: str, services: Services, db: str, prefix: str) -> Path:
    """A rules collector of its own share group (each gets every message), its own database."""
    raw: dict[str, Any] = {
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": prefix,
                 "username": None, "client_id": f"{name}-{prefix[:8]}", "share_group": name},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": db},
        "write": {"flush_interval": "100ms"},
        "inventory": "inventory.yaml", "policies": POLICIES,
        "rules": {"interval": "1s", "snapshot": str(tmp / f"{name}.snapshot"),
                  "snapshot_every": "1h"},  # written on a clean stop only, here
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


class Proc:
    """`schoolmon collector run --evaluate-at T` with its log file."""

    def __init__(self, config: Path, evaluate_at: int) -> None:
        self.log = config.with_suffix(f".{time.monotonic_ns()}.log")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                schoolmon_cmd("collector", "run", "-c", str(config),
                              "--evaluate-at", str(evaluate_at)), stderr=out)
        STARTED.append(self)
        wait_until(lambda: b"subscribed" in self.text() or self.proc.poll() is not None, 30,
                   "the collector to subscribe")
        assert self.proc.poll() is None, self.text()[-2000:]

    def text(self) -> bytes:
        """Its log so far."""
        return self.log.read_bytes()

    def passes(self) -> int:
        """Evaluation passes written so far."""
        return sum(1 for line in self.text().splitlines()
                   if PASS in line and b" points in " in line)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal it and reap it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(30)


# Every collector the tests started: the fixture below stops those a failure left running
# (one would go on writing to the shared InfluxDB and holding its MQTT client id).
STARTED: list[Proc] = []


@pytest.fixture(autouse=True)
def no_collector_left() -> Iterator[None]:
    """Stop every collector the test started, whatever failed."""
    yield
    while STARTED:
        STARTED.pop().stop(signal.SIGKILL)


def post_lines(url: str, db: str, lines: list[str]) -> None:
    """Line protocol straight into InfluxDB (ms)."""
    req = urllib.request.Request(f"{url}/write?db={db}&precision=ms",
                                 data="\n".join(lines).encode(), method="POST")
    urllib.request.urlopen(req, timeout=30).read()


def stored_samples(url: str, db: str) -> int:
    """Points of every sample kind in a database."""
    total = 0
    for kind in KINDS:
        for s in influx_query(url, db, f'SELECT count(*) FROM "{kind}"'):
            total += max(v for v in s["values"][0][1:] if v is not None)  # type: ignore[index]
    return total


def points(url: str, db: str, measurement: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every point of a measurement: its tags and time -> its fields."""
    out = {}
    for row in influx_rows(url, db, f'SELECT * FROM "{measurement}" GROUP BY *'):
        tags = tuple(sorted((k, v) for k, v in row.items() if k in TAGS and v))
        out[(*tags, row["time"])] = tuple(sorted((k, v) for k, v in row.items()
                                                 if k not in TAGS and k != "time"))
    return out


def backfill(config_yaml: Path, plan: SimulationPlan, url: str,
             collectors: list[tuple[str, Proc]]) -> None:
    """Publish three school days; return when every collector stored and evaluated them."""
    config = CollectorConfig.model_validate(yaml.safe_load(config_yaml.read_text()))
    result = run_simulation(config.mqtt, plan, RunOptions(interval=600, backfill=3))
    assert result.acked, result.stats
    published = result.stats.samples
    for db, proc in collectors:
        wait_until(lambda: stored_samples(url, db) == published, 60,  # noqa: B023
                   f"{published} samples stored in {db}")
        # The engine has taken in every sample once a pass has run after the last store.
        seen = proc.passes()
        wait_until(lambda: proc.passes() >= seen + 2, 60, "two passes after the backfill")  # noqa: B023


@dataclass(frozen=True)
class Restarted:
    """A restart to check: the collector's config, T, its storage and what it restores from."""

    config: Path
    at: int
    url: str
    db: str
    restart: str  # "snapshot" or "full"


def restart_and_compare(r: Restarted, expected: dict[Any, Any], want_status: dict[Any, Any],
                        before: dict[Any, Any]) -> tuple[Proc, dict[Any, Any]]:
    """Start the killed collector again; its first pass must be the reference's."""
    for m in ("compliance", "school_status"):  # only the restarted pass may write them
        influx_query(r.url, r.db, f'DROP MEASUREMENT "{m}"')
    main = Proc(r.config, r.at)
    wait_until(lambda: main.passes() >= 1, 120, "the first pass after the restart")
    log = main.text().decode(errors="replace")
    restored = next(line for line in log.splitlines() if "state restored" in line)
    assert f" {SCHOOLS} schools," in restored, restored
    assert ("backlog stored after the snapshot" in log) == (r.restart == "snapshot"), log
    first = next(line for line in log.splitlines() if " points in " in line)
    wait_until(lambda: len(points(r.url, r.db, "compliance")) == len(expected), 30,
               "the first pass stored")
    got = points(r.url, r.db, "compliance")
    wait_until(lambda: len(points(r.url, r.db, "school_status")) == len(want_status), 30,
               "the first pass's school_status stored")
    got_status = points(r.url, r.db, "school_status")
    print(r.restart, restored, first, len(got), sep="\n")
    assert {k[-1] for k in got} == {r.at}, first
    assert got == expected, r.restart
    assert got == before  # and what it wrote before the kill
    assert len(got_status) == SCHOOLS and got_status == want_status
    return main, got


TAGS = {"policy", "rule", "metric", "scope", "district", "school", "classroom", "category",
        "ownership"}


def test_restart_after_sigkill_gives_the_same_first_pass(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path) -> None:
    """Ten schools, three school days backfilled; kill -9, restart: the same pass at T."""
    url = services.influx_url
    ref_db = "r_" + uuid.uuid4().hex[:12]
    influx_query(url, "", f'CREATE DATABASE "{ref_db}"')
    plan = make_plan(SimulationSpec(), SCHOOLS, seed=10)
    write_inventory(plan_inventory(plan), tmp_path / "inventory.yaml")
    main_yaml = collector_yaml(tmp_path, "main", services, influx_db, topic_prefix)
    ref_yaml = collector_yaml(tmp_path, "ref", services, ref_db, topic_prefix)
    # The sim's "now" is the wall clock; the passes evaluate 18 minutes later, when agents
    # heard at arrival (within 3 minutes) are as stale as agents heard at their samples' times
    # (restore knows samples, not arrivals), and the gateways' reach of every 10 minutes is
    # still within internet_up's 30 minutes.
    started = int(time.time() * 1000)
    at = started + 18 * 60_000
    ref, main = Proc(ref_yaml, at), Proc(main_yaml, at)
    snapshot = tmp_path / "main.snapshot"
    try:
        # A clean stop writes the (young) state's snapshot; the restart loads it.
        wait_until(lambda: main.passes() >= 1, 60, "the first pass")
        main.stop()
        assert snapshot.exists() and snapshot.stat().st_mode & 0o777 == 0o600
        main = Proc(main_yaml, at)
        wait_until(lambda: b"state restored" in main.text(), 60, "the restore")
        assert b"loaded for 10 schools" in main.text(), main.text()[-2000:]
        backfill(main_yaml, plan, url, [(influx_db, main), (ref_db, ref)])
        assert time.time() * 1000 < at - 15 * 60_000, "the backfill arrived too late for T"
        journal = influx_rows(url, influx_db, 'SELECT count("min_ts_ms") FROM "rules_late"')
        assert journal and journal[0]["count"] > 0  # the backfill is a backlog
        expected = points(url, ref_db, "compliance")
        want_status = points(url, ref_db, "school_status")
        before = points(url, influx_db, "compliance")
        assert before, "the main collector evaluated before it was killed"
        # From the snapshot (older than the backfill) and the journal, then with no snapshot.
        for restart in ("snapshot", "full"):
            main.stop(signal.SIGKILL)
            if restart == "full":
                snapshot.unlink()
            main, got = restart_and_compare(Restarted(main_yaml, at, url, influx_db, restart),
                                            expected, want_status, before)
    finally:
        main.stop()
        ref.stop()
        influx_query(url, "", f'DROP DATABASE "{ref_db}"')
    # The windowed figures were really restored, not trivially equal (all no_data).
    by_rule: dict[str, list[Any]] = {}
    for key, fields in got.items():
        by_rule.setdefault(dict(key[:-1])["rule"], []).append(dict(fields))
    for rule in ("access_10m", "multimedia_ratio", "wireless_campus", "internet_connected"):
        states = [f["state"] for f in by_rule[rule]]
        assert states.count("ok") > len(states) // 2, (rule, states)
    assert any(f["met"] for f in by_rule["access_10m"])
    assert not all(f["met"] for f in by_rule["access_10m"])


def test_influxdb_down_at_start_is_retried_then_restored(tmp_path: Path) -> None:
    """InfluxDB stopped when the collector starts: it says so, retries, restores once it is up."""
    svc = start_services(tmp_path / "svc", "mosquitto", "influxdb")
    try:
        url = svc.influx_url
        influx_query(url, "", 'CREATE DATABASE "down"')
        now = int(time.time() * 1000)
        gateway = AgentIdentity("d1", "s1", "s1-gw")
        post_lines(url, "down", [sample_line(Sample(
            "speedtest", now - 3_600_000, {"server": "http://hub"}, {"down_mbps": 95.0}),
            gateway)])
        (tmp_path / "inventory.yaml").write_text(yaml.safe_dump({
            "districts": [{"id": "d1", "name": "d1"}],
            "schools": [{"id": "s1", "name": "s1", "district": "d1", "category": "urban",
                         "classes": 6}],
            "agents": [{"id": gateway.agent, "school": "s1"}]}), encoding="utf-8")
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({
            "mqtt": {"host": "127.0.0.1", "port": svc.mqtt_port, "username": None,
                     "client_id": "restore-down"},
            "storage": {"kind": "influxdb1", "url": url, "database": "down"},
            "inventory": "inventory.yaml", "policies": ["cn-moe-2017"],
            "rules": {"interval": "1s"}}), encoding="utf-8")
        svc.stop("influxdb")
        proc = Proc(path, now)
        try:
            wait_until(lambda: proc.text().count(b"restore paused at 0/1 schools") >= 2, 60,
                       "two tries said")
            assert proc.passes() == 0  # no pass on an empty state
            svc.start("influxdb")
            wait_until(lambda: proc.passes() >= 1, 60, "the first pass once restored")
            assert b"state restored: 1 schools, 1 samples" in proc.text()
        finally:
            proc.stop()
        row = influx_rows(url, "down", "SELECT * FROM compliance WHERE \"rule\" = 'access_10m' "
                          "AND \"scope\" = 'school'")
        assert [(r["value"], r["met"], r["time"]) for r in row] == [(95.0, True, now)]
    finally:
        svc.stop()
