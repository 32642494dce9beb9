"""A simulated district end to end: simulator, Mosquitto, collector + rules, InfluxDB, report.

For each district size: ``schoolmon simulate``'s backfill of two school days at a 30-minute step
(realistic class sizes, every classroom with a PC agent), stored by an in-process collector with
the rules engine observing, then one evaluation pass of every shipped policy, its compliance
points written, and the cn-moe-2017 report made from InfluxDB.  The report's shares are checked
against the simulation plan.  Writes docs/benchmarks.md.
Run: .venv/bin/python -m bench.simulated_district [--schools 200,1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.report import machine, write_section
from collector.config import CollectorConfig
from collector.reports import Period, ReportOptions, write_report
from collector.rules import RulesEngine, RulesSettings, load_policies
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Sample
from schoolmon.sim.inventory import plan_inventory
from schoolmon.sim.plan import make_plan
from schoolmon.sim.spec import SimulationSpec
from schoolmon.simulate import RunOptions, run_simulation

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ["cn-moe-2017", "cn-moe-13fyp", "guangzhou-2017", "yunnan-13fyp", "cn-moe-edu2",
            "uk-dfe-broadband"]
ZONE = ZoneInfo("Asia/Shanghai")
NOW = int(dt.datetime(2026, 11, 18, 0, 10, tzinfo=ZONE).timestamp() * 1000)  # a Wednesday


def start_services(d: Path) -> dict[str, str]:
    """Mosquitto and InfluxDB on free loopback ports."""
    out = subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "start", str(d),
                          "mosquitto", "influxdb"], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def create_db(url: str, db: str) -> None:
    """CREATE DATABASE."""
    data = urllib.parse.urlencode({"q": f"CREATE DATABASE {db}"}).encode()
    urllib.request.urlopen(f"{url}/query", data=data, timeout=30).read()


def run(env: dict[str, str], d: Path, schools: int) -> dict[str, float]:
    """One district size; its figures."""
    db = f"sim{schools}"
    create_db(env["INFLUXDB_URL"], db)
    plan = make_plan(SimulationSpec(), schools, seed=2026)
    inventory = plan_inventory(plan)
    config = CollectorConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": int(env["MQTT_PORT"]), "username": None,
                 "topic_prefix": f"bench{schools}/v1", "client_id": f"bench-{schools}"},
        "storage": {"kind": "influxdb1", "url": env["INFLUXDB_URL"], "database": db}})
    engine = RulesEngine(inventory, load_policies(POLICIES), RulesSettings(), clock=lambda: NOW)
    seen = [0]
    lock = threading.Lock()

    def counter(_who: AgentIdentity, samples: list[Sample]) -> None:
        with lock:
            seen[0] += len(samples)

    collector = Collector(config, build_writer(config), observers=[engine.observe, counter],
                          status_observers=[engine.observe_status])
    collector.start()
    try:
        assert collector.connected.wait(10)
        time.sleep(0.3)
        begun = time.perf_counter()
        result = run_simulation(config.mqtt, plan, RunOptions(interval=1800, backfill=2),
                                now_ms=lambda: NOW)
        while seen[0] < result.stats.samples:
            time.sleep(0.05)
        ingest = time.perf_counter() - begun
        begun = time.perf_counter()
        lines = engine.pass_lines(NOW)
        evaluation = time.perf_counter() - begun
        begun = time.perf_counter()
        assert collector.write_points(lines)
        write = time.perf_counter() - begun
    finally:
        collector.stop()
    begun = time.perf_counter()
    period = Period(result.days[0], dt.datetime.fromtimestamp(NOW / 1000, ZONE).date())
    path = d / "collector.yaml"
    path.write_text("")  # only its directory is used, to find policies
    data = write_report(config, path, ReportOptions("cn-moe-2017", period, d / f"r{schools}",
                                                    "zh-CN"), inventory=inventory)
    report = time.perf_counter() - begun
    summary = data.summary("access_10m")
    assert summary is not None and summary.met == sum(
        s.access_at_least(10) for s in plan.schools), "report differs from the plan"
    rooms = sum(len(s.ordinary_rooms) for s in plan.schools)
    return {"schools": schools, "classrooms": rooms, "agents": schools + rooms,
            "samples": result.stats.samples, "ingest_s": ingest,
            "rate": result.stats.samples / ingest, "eval_s": evaluation,
            "points": len(lines), "write_s": write, "report_s": report}


def main() -> None:
    """Run the sizes, print and write the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--schools", default="200,1000")
    sizes = [int(x) for x in parser.parse_args().schools.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        env = start_services(d)
        try:
            for n in sizes:
                r = run(env, d, n)
                print(f"{n} schools: {r['samples']:.0f} samples in {r['ingest_s']:.1f} s "
                      f"({r['rate']:.0f}/s), evaluation {r['eval_s']:.2f} s "
                      f"({r['points']:.0f} points), report {r['report_s']:.2f} s", flush=True)
                rows.append(r)
        finally:
            subprocess.run(["bash", str(ROOT / "scripts/services.sh"), "stop", str(d)],
                           check=False)
    table = "\n".join(
        f"| {r['schools']:.0f} | {r['classrooms']:.0f} | {r['agents']:.0f} | "
        f"{r['samples']:.0f} | {r['ingest_s']:.1f} | {r['rate']:.0f} | {r['eval_s']:.2f} | "
        f"{r['points']:.0f} | {r['write_s']:.2f} | {r['report_s']:.2f} |" for r in rows)
    header = ("| schools | classrooms | agents | samples | publish to rules-observed, s | "
              "samples/s | evaluation pass, s | points | write, s | report, s |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    write_section("simulated_district", f"""## Simulated district end to end \
(`bench/simulated_district.py`)

`schoolmon simulate` backfill (two school days, a sample every 30 min; gateways day and night,
classroom PCs in school hours) -> Mosquitto -> one in-process collector with the rules engine
observing -> InfluxDB 1.x; then one evaluation pass of all six shipped policies (compliance and
school_status points) and the cn-moe-2017 report (zh-CN) from InfluxDB. Everything shares the
machine's cores. The report's shares equal the simulation plan's.

Measured {machine()}.

{header}
{table}
""")


if __name__ == "__main__":
    main()
