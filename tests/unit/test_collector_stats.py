"""The collector's own counters as a line (collector/collector_stats.py)."""

from __future__ import annotations

from collector.collector_stats import stats_line
from collector.inflight import QueueStats
from collector.storage.resilient import WriteStats


def test_stats_line_names_every_counter() -> None:
    """Each counter is its field, the client id the tag, booleans stay booleans."""
    queue = QueueStats(bytes_held=10, peak_bytes=20, joined=3, stored_resends=4, shed=5,
                       probation_bytes=0, peak_probation=6)
    writes = WriteStats(written=7, retries=8, quarantined=9, failing=True)
    assert stats_line("c-1", 11, queue, writes, 1_700_000_000_000) == (
        "collector_stats,collector=c-1 messages_accepted=11.0,queue_bytes=10.0,"
        "queue_peak_bytes=20.0,probation_peak_bytes=6.0,resends_joined=3.0,resends_stored=4.0,"
        "messages_shed=5.0,points_written=7.0,write_retries=8.0,points_quarantined=9.0,"
        "storage_failing=true 1700000000000")
