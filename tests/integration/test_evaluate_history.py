"""Done means: a district backfilled over three school days gets, from `schoolmon evaluate`, a
compliance point set per school day (at the end of its lessons) and so a report trend with a
point per day; a re-run writes the same series at the same instants; bad input is one line."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.config import CollectorConfig
from collector.reports import Period, ReportOptions, write_report
from collector.reports.command import ReportError
from collector.rules.history import school_day_end_ms
from common.timetable import Timetable
from schoolmon.sim.inventory import plan_inventory, write_inventory
from schoolmon.sim.plan import make_plan
from schoolmon.sim.spec import SimulationSpec
from schoolmon.simulate import RunOptions, run_simulation
from tests.conftest import (
    Services,
    influx_rows,
    schoolmon_cmd,
    start_collector_process,
    wait_until,
)
from tests.integration.test_rules_restore import stored_samples

pytestmark = pytest.mark.integration

POLICIES = ["cn-moe-2017", "guangzhou-2017"]


def compliance(url: str, db: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every compliance point of cn-moe-2017: series and time -> fields."""
    out = {}
    for row in influx_rows(url, db, "SELECT * FROM compliance WHERE \"policy\" = 'cn-moe-2017' "
                           "GROUP BY *"):
        out[tuple(sorted((k, str(v)) for k, v in row.items()))] = ()
    return out


def evaluate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`schoolmon evaluate -c config ARGS`."""
    return subprocess.run(schoolmon_cmd("evaluate", "-c", str(config), *args),
                          capture_output=True, text=True, timeout=120, check=False)


def test_evaluate_writes_a_point_per_school_day_once(
        services: Services, influx_db: str, topic_prefix: str, tmp_path: Path) -> None:
    """Backfill, evaluate, report: one trend point per school day; a re-run changes nothing."""
    url = services.influx_url
    plan = make_plan(SimulationSpec(), 10, seed=11)
    write_inventory(plan_inventory(plan), tmp_path / "inventory.yaml")
    raw = {"mqtt": {"host": "127.0.0.1", "port": services.mqtt_port,
                    "topic_prefix": topic_prefix, "username": None,
                    "client_id": f"hist-{topic_prefix[:8]}"},
           "storage": {"kind": "influxdb1", "url": url, "database": influx_db},
           "write": {"flush_interval": "100ms"},
           "inventory": "inventory.yaml", "policies": POLICIES}
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    config = CollectorConfig.model_validate(raw)
    proc = start_collector_process(path)
    try:
        result = run_simulation(config.mqtt, plan, RunOptions(interval=1800, backfill=3))
        assert result.acked, result.stats
        wait_until(lambda: stored_samples(url, influx_db) == result.stats.samples, 60,
                   "every sample stored")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    days = result.days
    period = Period(days[0], days[-1], "Asia/Shanghai")
    with pytest.raises(ReportError):  # the live engine evaluated today only (if at all)
        write_report(config, path, ReportOptions("cn-moe-2017", period, tmp_path / "r0", "en"))

    args = ("--policy", "cn-moe-2017", "--from", str(days[0]), "--to", str(days[-1]))
    begun = time.monotonic()
    first = evaluate(path, *args)
    print(f"evaluate of {len(days)} days, 10 schools: {time.monotonic() - begun:.1f} s")
    assert first.returncode == 0, first.stderr[-2000:]
    points = compliance(url, influx_db)
    ends = {school_day_end_ms(Timetable(), d) for d in days}
    assert {dict(k)["time"] for k in points} == {str(e) for e in ends}
    assert {dict(k)["policy"] for k in points} == {"cn-moe-2017"}  # --policy: only its points

    data = write_report(config, path, ReportOptions("cn-moe-2017", period, tmp_path / "r1", "en"))
    expected = 100 * plan.share_at_least(10)
    assert [p.day for p in data.trend["access_10m"]] == days
    assert [p.share_pct for p in data.trend["access_10m"]] == pytest.approx([expected] * 3)
    assert [p.share_pct for p in data.trend["multimedia_ratio"]] == pytest.approx(
        [100 * plan.district_multimedia_ratio()] * 3)

    again = evaluate(path, *args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout == first.stdout
    assert compliance(url, influx_db) == points  # same series, times and values, no more


def test_evaluate_bad_input_is_one_line(services: Services, influx_db: str,
                                         tmp_path: Path) -> None:
    """Unknown policy, --from after --to, InfluxDB unreachable: one line, exit 2."""
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump({
        "districts": [{"id": "d1", "name": "d1"}],
        "schools": [{"id": "s1", "name": "s1", "district": "d1", "category": "urban",
                     "classes": 6}]}), encoding="utf-8")

    def config(url: str) -> Path:
        path = tmp_path / f"c{len(url)}.yaml"
        path.write_text(yaml.safe_dump({
            "storage": {"kind": "influxdb1", "url": url, "database": influx_db},
            "inventory": "inventory.yaml", "policies": ["cn-moe-2017"]}), encoding="utf-8")
        return path

    good = config(services.influx_url)
    cases = [
        (good, ("--policy", "no-such", "--from", "2026-11-02", "--to", "2026-11-06"),
         "no policy 'no-such'"),
        (good, ("--from", "2026-11-06", "--to", "2026-11-02"), "is before --from"),
        (config("http://127.0.0.1:9"), ("--from", "2026-11-02", "--to", "2026-11-06"),
         "unreachable"),
    ]
    for path, args, words in cases:
        run = evaluate(path, *args)
        assert run.returncode == 2, (args, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, run.stderr)
        assert "Traceback" not in run.stderr
