"""The late-arrival journal: one ``rules_late`` point per agent and stored batch with a backlog.

A rules restore from a state snapshot (collector/rules/snapshot.py) reads back the samples newer
than the snapshot; a backlog (an agent offline for a day delivering its spool) is older than the
snapshot but was stored, and counted by the live engine, after it. The writer stores this point
in the same write as the samples, at the receipt time, so the restore finds it and replays the
backlog's time range (collector/rules/restore.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.measurements import RULES_LATE
from collector.storage.lineprotocol import format_line
from common.wire import AgentIdentity, Sample

# Agents flush every second: a batch whose oldest sample is older than this is a backlog.
LATE_MS = 60_000


def late_lines(batches: Iterable[tuple[AgentIdentity, list[Sample]]],
               received_ms: int) -> list[str]:
    """The journal points of one storage write: per agent, its late samples' time range."""
    ranges: dict[AgentIdentity, tuple[int, int]] = {}
    cutoff = received_ms - LATE_MS
    for who, samples in batches:
        if not samples:
            continue
        low = min(s.ts_ms for s in samples)
        if low >= cutoff:
            continue
        high = max(s.ts_ms for s in samples)
        old = ranges.get(who)
        ranges[who] = (low, high) if old is None else (min(old[0], low), max(old[1], high))
    return [format_line(RULES_LATE.name,
                        {"district": w.district, "school": w.school, "agent": w.agent},
                        {RULES_LATE.field("min_ts_ms"): low, RULES_LATE.field("max_ts_ms"): high},
                        received_ms)
            for w, (low, high) in ranges.items()]
