"""``schoolmon evaluate``: compliance points of past school days, from the stored samples.

One engine, as collector.yaml builds it (every policy of the config, so the bucket geometry is
the live engine's), takes in the stored samples range by range (restore.py) and is evaluated at
the end of each school day, as the live engine's last pass of that day would be. The points go
to the same series at the same instants: a re-run overwrites them with themselves.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from collector.rules.engine import RulesEngine
from collector.rules.restore import Restorer, StoredSamples
from collector.rules.results import compliance_lines
from common.config import ConfigError
from common.timetable import Timetable, parse_day_range, parse_hours

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CHUNK = 20_000  # points per write


def is_school_day(timetable: Timetable, day: dt.date) -> bool:
    """A teaching weekday that is not a holiday."""
    if _WEEKDAYS[day.weekday()] not in timetable.days:
        return False
    return not any(first <= day <= last
                   for first, last in map(parse_day_range, timetable.holidays))


def school_day_end_ms(timetable: Timetable, day: dt.date) -> int:
    """When the last lesson of ``day`` ends, in epoch ms."""
    zone = ZoneInfo(timetable.timezone)
    ends = []
    for item in timetable.hours:
        end = parse_hours(item)[1]
        when = (dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
                if end == dt.time.max else dt.datetime.combine(day, end, zone))
        ends.append(int(when.timestamp() * 1000))
    return max(ends)


@dataclass(frozen=True)
class DayPoints:
    """What one evaluated day wrote."""

    day: dt.date
    ts_ms: int
    points: int


def evaluate_days(engine: RulesEngine, source: StoredSamples, days: list[dt.date],
                  write: Callable[[list[str]], None], *, policy: str | None = None,
                  timetable: Timetable | None = None,
                  now_ms: int | None = None) -> list[DayPoints]:
    """Replay up to the end of each school day in turn, evaluate there and write the points.

    A day whose lessons have not ended by ``now_ms`` is left to the live engine.
    """
    table = timetable or engine.settings.default_timetable
    now = engine.clock() if now_ms is None else now_ms
    ends = [(d, end) for d in days if is_school_day(table, d)
            and (end := school_day_end_ms(table, d)) <= now]
    if not ends:
        return []
    restorer = Restorer(engine, source)
    previous = restorer.window_start(ends[0][1]) - 1
    out = []
    for day, end in ends:
        restorer.replay(previous, end)
        results = [r for r in engine.evaluate(end) if policy is None or r.policy == policy]
        lines = compliance_lines(results, end)
        for i in range(0, len(lines), _CHUNK):
            write(lines[i:i + _CHUNK])
        out.append(DayPoints(day, end, len(lines)))
        previous = end
    return out


def _date(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError([f"evaluate: {flag}: {value!r} is not a date like 2026-09-01"]) from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``schoolmon evaluate`` (ConfigError for user mistakes: one line, exit 2)."""
    from collector.config import load_collector_config
    from collector.reports.query import InfluxReader, QueryError
    from collector.rules.engine import build_rules_engine
    from collector.storage import StorageError
    from collector.subscriber import build_writer

    config = load_collector_config(args.config)
    first, last = _date(args.date_from, "--from"), _date(args.date_to, "--to")
    if last < first:
        raise ConfigError([f"evaluate: --to {last} is before --from {first}"])
    engine = build_rules_engine(config.rules, config.inventory, config.policies, args.config)
    if engine is None:
        raise ConfigError([f"{args.config}: rules need an inventory, policies and "
                           "rules.enabled"])
    names = [p.name for p in engine.policies]
    if args.policy is not None and args.policy not in names:
        raise ConfigError([f"{args.config}: policies: no policy {args.policy!r} (have: "
                           f"{', '.join(names)})"])
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    writer = build_writer(config)
    try:
        written = evaluate_days(engine, InfluxReader(config.storage), days, writer.write,
                                policy=args.policy)
    except (QueryError, StorageError) as exc:
        raise ConfigError([f"evaluate: {exc}"]) from None
    finally:
        writer.close()
    for d in written:
        print(f"evaluate: {d.day} at {dt.datetime.fromtimestamp(d.ts_ms / 1000, dt.UTC):%H:%M} "
              f"UTC: {d.points} compliance points")
    if not written:
        print("evaluate: no school day between --from and --to", file=sys.stderr)
    return 0
