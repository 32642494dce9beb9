"""``schoolmon report`` against real InfluxDB 1.x, on compliance points written by hand.

Three nightly evaluations of two rules for five schools in two districts, written with the rules
engine's own ``compliance_lines``, plus speed tests; every figure of the report is known.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from collector.config import CollectorConfig, Influx1Storage
from collector.reports import Period, ReportOptions, write_report
from collector.reports.command import cmd_report
from collector.rules import ComplianceResult, compliance_lines
from collector.storage.influx1 import Influx1Writer
from collector.storage.lineprotocol import format_line
from common.config import ConfigError
from schoolmon.cli import build_parser
from tests.conftest import Services

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
DAYS = [dt.date(2026, 11, d) for d in (16, 17, 18)]
POLICY = "cn-moe-2017"
DISTRICT = {"s1": "d1", "s2": "d1", "s3": "d1", "s4": "d1", "s5": "d2"}
# access_10m per night (None: no speed test in the window); shares 2/4, 3/4, 3/4.
ACCESS = [{"s1": 50.0, "s2": 5.0, "s3": 120.0, "s4": None, "s5": 8.0},
          {"s1": 50.0, "s2": 12.0, "s3": 120.0, "s4": None, "s5": 8.0},
          {"s1": 52.0, "s2": 12.0, "s3": 130.0, "s4": None, "s5": 8.0}]
ROOMS = {("s1", "101"): 100.0, ("s1", "102"): 40.0, ("s3", "1"): 95.0}  # multimedia uptime %
SPEEDTESTS = {"s1": [48.0, 50.0, 52.0], "s2": [5.0, 12.0, 12.0], "s3": [120.0, 130.0],
              "s5": [8.0, 8.0]}
INVENTORY = {
    "districts": [{"id": "d1", "name": "天河区"}, {"id": "d2", "name": "从化区"}],
    "schools": [
        {"id": "s1", "name": "天河第一小学", "district": "d1", "category": "urban", "classes": 2,
         "classrooms": [{"id": "101"}, {"id": "102"}]},
        {"id": "s2", "name": "龙洞小学", "district": "d1", "category": "rural", "classes": 6},
        {"id": "s3", "name": "龙洞教学点", "district": "d1", "category": "teaching_point",
         "classes": 1, "classrooms": [{"id": "1"}]},
        {"id": "s4", "name": "新建学校", "district": "d1", "category": "urban", "classes": 12},
        {"id": "s5", "name": "从化第二中学", "district": "d2", "category": "rural", "classes": 9},
    ],
}


def night(day: dt.date) -> int:
    """23:00 local on ``day``, in ms."""
    return int(dt.datetime.combine(day, dt.time(23), ZONE).timestamp() * 1000)


def _result(rule: str, metric: str, scope: str, district: str, **kw: Any) -> ComplianceResult:
    base: dict[str, Any] = {"school": None, "classroom": None, "value": None, "target": 10.0,
                            "comparator": ">=", "met": False}
    base.update(kw)
    return ComplianceResult(POLICY, rule, metric, scope, district, **base)  # type: ignore[arg-type]


def night_results(index: int) -> list[ComplianceResult]:
    """One evaluation pass, as the rules engine would hand it out."""
    out: list[ComplianceResult] = []
    tally: dict[str, list[int]] = {"d1": [0, 0, 0], "d2": [0, 0, 0]}
    for school, value in ACCESS[index].items():
        district = DISTRICT[school]
        met = value is not None and value >= 10
        out.append(_result("access_10m", "access_mbps", "school", district, school=school,
                           value=value, met=met, state="ok" if value is not None else "no_data"))
        t = tally[district]
        if value is None:
            t[2] += 1
        else:
            t[0] += 1
            t[1] += met
    for district, (counted, met, none) in tally.items():
        share = 100.0 * met / counted
        out.append(_result("access_10m", "access_mbps", "district_share", district,
                           value=share, target=70.0, met=share >= 70, counted=counted,
                           counted_met=met, counted_no_data=none))
    for (school, room), uptime in ROOMS.items():
        out.append(_result("multimedia_ratio", "multimedia_uptime", "classroom", "d1",
                           school=school, classroom=room, value=uptime, target=80.0,
                           met=uptime >= 80))
    out.append(_result("multimedia_ratio", "multimedia_uptime", "district_share", "d1",
                       value=66.7, target=80.0, unit="classrooms", counted=3, counted_met=2,
                       counted_no_data=0))
    return out


def fill(url: str, db: str) -> None:
    """Three nights of compliance points and the period's speed tests."""
    lines: list[str] = []
    for i, day in enumerate(DAYS):
        lines.extend(compliance_lines(night_results(i), night(day)))
    for school, values in SPEEDTESTS.items():
        for k, down in enumerate(values):
            ts = night(DAYS[0]) - 12 * 3_600_000 + k * 86_400_000 // 2
            lines.append(format_line("speedtest", {"school": school, "district": DISTRICT[school],
                                                   "agent": f"{school}-gw", "server": "hub"},
                                     {"down_mbps": down, "up_mbps": down / 2}, ts))
    # Outside the period: must not count.
    lines.append(format_line("speedtest", {"school": "s4", "district": "d1", "agent": "s4-gw",
                                           "server": "hub"}, {"down_mbps": 900.0},
                             night(DAYS[-1]) + 2 * 3_600_000))
    Influx1Writer(Influx1Storage(kind="influxdb1", url=url, database=db)).write(lines)


def write_configs(tmp: Path, storage: dict[str, Any]) -> Path:
    """collector.yaml and inventory.yaml in ``tmp``."""
    (tmp / "inventory.yaml").write_text(yaml.safe_dump(INVENTORY, allow_unicode=True),
                                        encoding="utf-8")
    path = tmp / "collector.yaml"
    path.write_text(yaml.safe_dump({"storage": storage, "inventory": "inventory.yaml",
                                    "policies": [POLICY]}), encoding="utf-8")
    return path


def run_cli(*argv: str) -> int:
    """cmd_report with the arguments as ``schoolmon report`` parses them."""
    return cmd_report(build_parser().parse_args(["report", *argv]))


@pytest.fixture
def report_db(services: Services, influx_db: str) -> str:
    """A database holding the hand-built period."""
    fill(services.influx_url, influx_db)
    return influx_db


def test_report_command_writes_the_known_figures(
        services: Services, report_db: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Shares, tiers, trend and misses in report.html; every school x rule in report.csv."""
    config = write_configs(tmp_path, {"kind": "influxdb1", "url": services.influx_url,
                                      "database": report_db})
    out = tmp_path / "out"
    assert run_cli("-c", str(config), "--policy", POLICY, "--from", "2026-11-16",
                   "--to", "2026-11-18", "--out", str(out), "--lang", "en") == 0
    assert "5 schools, 2 rules" in capsys.readouterr().out
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'data-rule="access_10m" data-share="75.0" data-met="3" data-counted="4"' in page
    assert 'data-rule="multimedia_ratio" data-share="66.7" data-met="2" data-counted="3"' in page
    for tier, n in (("none", 1), ("0", 0), ("4", 1), ("10", 2), ("100", 1), ("1000", 0)):
        assert f'data-tier="{tier}">{n}<' in page
    assert 'id="miss-schools">3<' in page  # s4 (no data), s5 (8 Mbit/s), s1 (room 102)
    assert 'data-school="s5" data-rule="access_10m"' in page and "从化第二中学" in page
    rows = list(csv.DictReader(io.StringIO(
        (out / "report.csv").read_text(encoding="utf-8-sig"))))
    got = {(r["school"], r["rule"]): (r["value"], r["met"], r["category"]) for r in rows}
    assert got == {
        ("s1", "access_10m"): ("52.0", "true", "urban"),
        ("s2", "access_10m"): ("12.0", "true", "rural"),
        ("s3", "access_10m"): ("130.0", "true", "teaching_point"),
        ("s4", "access_10m"): ("", "false", "urban"),
        ("s5", "access_10m"): ("8.0", "false", "rural"),
        ("s1", "multimedia_ratio"): ("50.0", "false", "urban"),
        ("s3", "multimedia_ratio"): ("100.0", "true", "teaching_point"),
    }


def test_trend_per_local_day(services: Services, report_db: str, tmp_path: Path) -> None:
    """The nights' shares, bucketed by local (Asia/Shanghai) day."""
    config_path = write_configs(tmp_path, {"kind": "influxdb1", "url": services.influx_url,
                                           "database": report_db})
    config = CollectorConfig.model_validate(yaml.safe_load(config_path.read_text()))
    data = write_report(config, config_path,
                        ReportOptions(POLICY, Period(DAYS[0], DAYS[-1]), tmp_path / "o", "en"))
    assert [(p.day, p.share_pct) for p in data.trend["access_10m"]] == [
        (DAYS[0], 50.0), (DAYS[1], 75.0), (DAYS[2], 75.0)]
    assert [p.share_pct for p in data.trend["multimedia_ratio"]] == pytest.approx([200 / 3] * 3)
    one_day = write_report(config, config_path, ReportOptions(
        POLICY, Period(DAYS[0], DAYS[0]), tmp_path / "o1", "en"))
    assert one_day.summary("access_10m").share_pct == 50.0  # type: ignore[union-attr]
    assert [p.day for p in one_day.trend["access_10m"]] == [DAYS[0]]
    assert one_day.tiers == {None: 1, 0: 0, 4: 1, 10: 2, 100: 1, 1000: 0}


def test_influxdb2_kind_reads_through_the_v1_query_api(
        services: Services, report_db: str, tmp_path: Path) -> None:
    """storage.kind influxdb2: the bucket is the database, the token goes in the header."""
    config_path = write_configs(tmp_path, {"kind": "influxdb2", "url": services.influx_url,
                                           "bucket": report_db, "token_env": "INFLUX_TOKEN"})
    raw = yaml.safe_load(config_path.read_text())
    config = CollectorConfig.model_validate(raw, context={"environ": {"INFLUX_TOKEN": "t0k"}})
    data = write_report(config, config_path,
                        ReportOptions(POLICY, Period(DAYS[0], DAYS[-1]), tmp_path / "o", "zh-CN"))
    assert data.summary("access_10m").share_pct == 75.0  # type: ignore[union-attr]
    assert "未达标的学校" in (tmp_path / "o" / "report.html").read_text(encoding="utf-8")


def test_user_mistakes_and_empty_periods(
        services: Services, report_db: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A bad date is a config error; a policy without points says so and exits 1."""
    config = write_configs(tmp_path, {"kind": "influxdb1", "url": services.influx_url,
                                      "database": report_db})
    with pytest.raises(ConfigError) as err:
        run_cli("-c", str(config), "--policy", POLICY, "--from", "16.11.2026", "--to",
                "2026-11-18", "--out", str(tmp_path))
    assert err.value.lines == ["report: --from: '16.11.2026' is not a date like 2026-09-01"]
    assert run_cli("-c", str(config), "--policy", "yunnan-13fyp", "--from", "2026-11-16",
                   "--to", "2026-11-18", "--out", str(tmp_path / "y")) == 1
    assert "no compliance points of policy 'yunnan-13fyp'" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()
    bad = write_configs(tmp_path, {"kind": "influxdb1", "url": "http://127.0.0.1:9",
                                   "database": report_db})
    assert run_cli("-c", str(bad), "--policy", POLICY, "--from", "2026-11-16", "--to",
                   "2026-11-18", "--out", str(tmp_path / "z")) == 1
    assert "unreachable" in capsys.readouterr().err
