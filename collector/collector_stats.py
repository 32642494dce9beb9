"""The collector's own counters as a ``collector_stats`` point (collector/measurements.py).

What an admin needs to trust the ingest without reading logs: how much the write queue holds,
the resends it recognised instead of writing twice, the messages it left to the agents' resend
(shed: not lost, the agents keep them), and its writes and their retries.  Counters run from
the collector's start, as Telegraf's ``internal`` plugin reports its own.
"""

from __future__ import annotations

from collector.inflight import QueueStats
from collector.measurements import COLLECTOR_STATS
from collector.storage.lineprotocol import format_line
from collector.storage.resilient import WriteStats
from common.wire import FieldValue


def stats_line(collector: str, accepted: int, queue: QueueStats, writes: WriteStats,
               now_ms: int) -> str:
    """The point of one collector (its client id) at ``now_ms``."""
    fields: dict[str, FieldValue] = {
        "messages_accepted": accepted, "queue_bytes": queue.bytes_held,
        "queue_peak_bytes": queue.peak_bytes, "probation_peak_bytes": queue.peak_probation,
        "resends_joined": queue.joined, "resends_stored": queue.stored_resends,
        "messages_shed": queue.shed, "points_written": writes.written,
        "write_retries": writes.retries, "points_quarantined": writes.quarantined,
        "storage_failing": writes.failing}
    return format_line(COLLECTOR_STATS.name, {COLLECTOR_STATS.tag("collector"): collector},
                       {COLLECTOR_STATS.field(k): v for k, v in fields.items()}, now_ms)
