"""``schoolmon report``: read the period from InfluxDB, write report.html and report.csv."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.config import CollectorConfig, load_collector_config
from collector.inventory import Inventory, load_inventory
from collector.reports.csvout import render_csv, render_fleet_csv
from collector.reports.html import render_html
from collector.reports.load import build_report, inventory_path
from collector.reports.model import Period, ReportData
from collector.reports.query import InfluxReader, QueryError
from collector.rules.policy import PolicyProfile, load_policy
from collector.rules.settings import RulesSettings
from common.config import ConfigError


class ReportError(Exception):
    """The report cannot be made (nothing to report, storage unreadable)."""


@dataclass(frozen=True)
class ReportOptions:
    """What to report and where."""

    policy: str
    period: Period
    out: Path
    language: str = "zh-CN"


def rules_settings(config: CollectorConfig) -> RulesSettings:
    """The rules settings of collector.yaml (``rules:``), else the defaults."""
    settings = getattr(config, "rules", None)
    return settings if isinstance(settings, RulesSettings) else RulesSettings()


def _profile(name: str, config_path: str | Path) -> PolicyProfile | None:
    try:
        return load_policy(name, Path(config_path).parent, origin="--policy")
    except ConfigError:
        return None  # a profile no longer shipped: rule ids stand in for its titles


def write_report(config: CollectorConfig, config_path: str | Path, options: ReportOptions, *,
                 reader: InfluxReader | None = None, inventory: Inventory | None = None,
                 now_ms: Callable[[], int] | None = None) -> ReportData:
    """Build the report; write report.html, report.csv and fleet.csv into ``options.out``."""
    clock = now_ms or (lambda: int(time.time() * 1000))
    settings = rules_settings(config)
    profile = _profile(options.policy, config_path)
    try:
        data = build_report(
            reader or InfluxReader(config.storage), options.policy, options.period,
            profile=profile, inventory=inventory,
            statistic=settings.percentile, tolerance_pct=settings.rate_tolerance_pct,
            generated_ms=clock())
    except QueryError as exc:
        raise ReportError(str(exc)) from None
    data = with_profile(data, profile)
    if not data.summaries:
        raise ReportError(
            f"no compliance points of policy {options.policy!r} between "
            f"{options.period.first} and {options.period.last} (does the collector evaluate "
            "this policy? see policies: in collector.yaml)")
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "report.html").write_text(render_html(data, options.language),
                                             encoding="utf-8")
    # utf-8-sig: Excel (common in district offices) needs the BOM to read Chinese names.
    (options.out / "report.csv").write_text(render_csv(data), encoding="utf-8-sig")
    (options.out / "fleet.csv").write_text(render_fleet_csv(data), encoding="utf-8-sig")
    return data


def with_profile(data: ReportData, profile: PolicyProfile | None) -> ReportData:
    """The report data with what the profile says of each target: deadline, source, status."""
    if profile is None:
        return data
    rules = {r.id: r for r in profile.rules}
    summaries = [
        replace(s, rule=replace(s.rule, deadline=rule.deadline, source=rule.source,
                                basically=rule.basically))
        if (rule := rules.get(s.rule.id)) is not None else s
        for s in data.summaries]
    return replace(data, summaries=summaries, document=profile.document, status=profile.status)


def _date(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError([f"report: {flag}: {value!r} is not a date like 2026-09-01"]) from None


def _zone(arg: str | None, inventory: Inventory | None) -> str:
    zone = arg
    if zone is None and inventory is not None and inventory.schools:
        school = inventory.schools[0]
        zone = school.timezone or (school.timetable.timezone if school.timetable else None)
    zone = zone or "Asia/Shanghai"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: name too long
        raise ConfigError([f"report: --tz: unknown time zone {zone!r}"]) from None
    return zone


def cmd_report(args: argparse.Namespace) -> int:
    """Run the report from the command line (ConfigError for user mistakes)."""
    config = load_collector_config(args.config)
    first, last = _date(args.date_from, "--from"), _date(args.date_to, "--to")
    if last < first:
        raise ConfigError([f"report: --to {last} is before --from {first}"])
    path = inventory_path(args.config, config.inventory)
    inventory = load_inventory(path) if path else None
    language = args.lang or (config.alerts.language if config.alerts else "zh-CN")
    options = ReportOptions(args.policy, Period(first, last, _zone(args.tz, inventory)),
                            Path(args.out), language)
    try:
        data = write_report(config, args.config, options, inventory=inventory)
    except ReportError as exc:
        print(f"schoolmon: report: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"schoolmon: report: cannot write {args.out}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    print(f"report: {len(data.schools)} schools, {len(data.summaries)} rules, "
          f"{len(data.misses)} misses -> {options.out / 'report.html'}, "
          f"{options.out / 'report.csv'}")
    return 0
