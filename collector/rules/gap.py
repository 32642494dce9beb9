"""What a restore from a state snapshot reads back: the samples after it and the journal.

The full replay (restore.py) asks per group of schools with ``GROUP BY *``, which InfluxDB
answers with one JSON series per tag set: cheap when a series holds a week of points, ~80 us a
sample when it holds one, as in the minute or two after a snapshot. Here every school is read at
once, one kind per query with the tags the state reads as columns and no ``GROUP BY`` (a row per
sample), every sample of the range through the state (which keeps the newest reach, link and
port reading itself, whatever the order). InfluxDB 1.x opens every series of a measurement for
a time range however short (~10 us each: ~15 s for a province's 1.5 million series), so the
range is read in as few queries as memory allows: one for the minutes after a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from collector.measurements import AGENT_STATUS, RULES_LATE
from collector.rules.engine import RulesEngine
from collector.rules.state import READ_FIELDS, READ_TAGS
from common.kinds import KINDS
from common.wire import AgentIdentity, Sample

_IDENTITY = ("agent", "district", "school")
_READ = tuple(READ_FIELDS)
_OTHERS = tuple(k for k in KINDS if k not in READ_FIELDS)
# Rows per time slice (a province's minute is ~300,000 samples at 5-minute rounds); the first
# slice is the whole range when it is this short.
SLICE_SAMPLES = 2_000_000
_WHOLE_MS = 15 * 60_000


class Series(Protocol):
    """One series of a result (collector.reports.query.Series)."""

    name: str
    rows: list[dict[str, Any]]


Query = Callable[[str], list[Any]]


def _names(names: Iterable[str]) -> str:
    return ",".join(f'"{n}"' for n in dict.fromkeys(names))


def _select(kind: str) -> str:
    return (f"SELECT {_names([*READ_FIELDS[kind], *READ_TAGS[kind], *_IDENTITY])} "
            f'FROM "{kind}"')


def identity(row: Mapping[str, Any]) -> AgentIdentity | None:
    """The agent a stored point's tags (or a row's tag columns) name; None if one is empty."""
    district, school, agent = row.get("district"), row.get("school"), row.get("agent")
    if not (district and school and agent):
        return None
    return AgentIdentity(district, school, agent)


def _samples(series: list[Series]) -> list[tuple[AgentIdentity, Sample]]:
    out = []
    for s in series:
        tags, fields = READ_TAGS[s.name], READ_FIELDS[s.name]
        for row in s.rows:
            who = identity(row)
            if who is None:
                continue
            values = {f: row[f] for f in fields if row.get(f) is not None}
            if values:
                out.append((who, Sample(s.name, int(row["time"]), {
                    t: row[t] for t in tags if row.get(t)}, values)))
    return out


def replay_range(engine: RulesEngine, query: Query, since_ms: int, until_ms: int) -> int:
    """Every school's samples, statuses and heard times of ``since_ms`` < time <= ``until_ms``.

    Returns the samples replayed; raises what ``query`` raises (a retry starts again: replaying
    the same samples twice counts them once).
    """
    total, lo = 0, since_ms
    width = until_ms - since_ms if until_ms - since_ms <= _WHOLE_MS else 60_000
    while lo < until_ms:
        hi = min(until_ms, lo + width)
        span = f"time > {lo}ms AND time <= {hi}ms"
        items = [i for kind in _READ for i in _samples(query(f"{_select(kind)} WHERE {span}"))]
        items.sort(key=lambda item: item[1].ts_ms)  # a scan's BSSIDs, a device's samples
        engine.replay(items)
        for s in query(f"SELECT *::field,{_names(_IDENTITY)} FROM {_names(_OTHERS)} "
                       f"WHERE {span}"):
            for row in s.rows:
                who = identity(row)
                if who is not None:
                    engine.replay_heard(who, int(row["time"]))
        state = AGENT_STATUS.field("state")
        for s in query(f'SELECT "{state}",{_names(_IDENTITY)} FROM "{AGENT_STATUS.name}" '
                       f"WHERE {span}"):
            for row in s.rows:
                who = identity(row)
                if who is not None and row.get(state) in ("online", "offline"):
                    engine.replay_status(who, str(row[state]), int(row["time"]))
        total += len(items)
        # Quiet hours (a night, a district) in few queries, a busy province in bounded ones.
        grow = min(4.0, SLICE_SAMPLES / max(len(items), 1))
        width = max(5_000, min(int(grow * (hi - lo)), 6 * 3_600_000))
        lo = hi
    return total


def journal(query: Query, since_ms: int, until_ms: int,
            oldest_ms: int) -> dict[str, tuple[int, int]]:
    """school -> (oldest, newest) sample time of the backlogs stored after ``since_ms``."""
    low, high = RULES_LATE.field("min_ts_ms"), RULES_LATE.field("max_ts_ms")
    out: dict[str, tuple[int, int]] = {}
    for s in query(f'SELECT min("{low}") AS "lo", max("{high}") AS "hi" FROM '
                   f'"{RULES_LATE.name}" WHERE time > {since_ms}ms AND time <= {until_ms}ms '
                   'GROUP BY "school"'):
        school = s.tags.get("school")
        if school and s.rows and s.rows[0].get("lo") is not None:
            lo, hi = int(s.rows[0]["lo"]), int(s.rows[0]["hi"])
            if hi > oldest_ms:
                out[school] = (max(lo, oldest_ms + 1), hi)
    return out
