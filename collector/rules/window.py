"""Bounded per-window aggregates: a ring of time buckets counting (hits, samples).

Uptime and Wi-Fi shares need "how many school-hour samples, how many of them good" over a
window of days, for every device and classroom of every school.  Keeping the samples would grow
without bound; a fixed ring of buckets (width = longest window / ``rules.buckets``) keeps two
counters per bucket, so a window is exact to one bucket at its old end.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass


@dataclass(frozen=True)
class BucketGeometry:
    """Bucket width and ring length shared by every counter of an engine."""

    width_ms: int
    ring: int  # buckets kept: enough for the longest window plus its partial oldest bucket

    @classmethod
    def for_window(cls, longest_ms: int, buckets: int) -> BucketGeometry:
        """``buckets`` buckets across the longest window (and one for its partial end)."""
        width = max(1, -(-longest_ms // buckets))
        return cls(width, buckets + 1)

    def bucket(self, ts_ms: int) -> int:
        """The bucket number of an instant."""
        return ts_ms // self.width_ms

    def first_bucket(self, now_ms: int, window_ms: int) -> int:
        """The oldest bucket a window ending now touches."""
        return (now_ms - window_ms) // self.width_ms


class RingCounter:
    """(hits, total) per bucket in a ring; buckets older than the ring are forgotten."""

    __slots__ = ("counts", "head")

    def __init__(self, ring: int) -> None:
        self.head = -1  # newest bucket written
        self.counts = array("I", bytes(8 * ring))  # hits at 2i, total at 2i+1

    def add(self, bucket: int, hit: bool) -> bool:
        """Count one sample; False when it is older than the ring (not counted)."""
        counts, ring = self.counts, len(self.counts) // 2
        head = self.head
        if bucket > head:
            for b in range(max(head + 1, bucket - ring + 1), bucket + 1):
                i = (b % ring) * 2
                counts[i] = 0
                counts[i + 1] = 0
            self.head = head = bucket
        elif bucket <= head - ring:
            return False
        i = (bucket % ring) * 2
        counts[i + 1] += 1
        if hit:
            counts[i] += 1
        return True

    def add_hit(self, bucket: int) -> None:
        """Turn one already counted sample of ``bucket`` into a hit."""
        ring = len(self.counts) // 2
        if self.head - ring < bucket <= self.head:
            self.counts[(bucket % ring) * 2] += 1

    def add_counts(self, bucket: int, hits: int, total: int) -> None:
        """Add pre-aggregated counts to a bucket (state restore, benchmarks)."""
        if total and self.add(bucket, False):
            i = (bucket % (len(self.counts) // 2)) * 2
            self.counts[i + 1] += total - 1
            self.counts[i] += hits

    def totals(self, first: int, last: int) -> tuple[int, int]:
        """(hits, total) over buckets first..last inclusive."""
        counts, ring = self.counts, len(self.counts) // 2
        lo, hi = max(first, self.head - ring + 1), min(last, self.head)
        if hi < lo:
            return 0, 0
        if hi - lo + 1 == ring:  # the whole ring: let C do the sums
            return sum(counts[0::2]), sum(counts[1::2])
        hits = total = 0
        for b in range(lo, hi + 1):
            i = (b % ring) * 2
            hits += counts[i]
            total += counts[i + 1]
        return hits, total

    def share_pct(self, first: int, last: int) -> float | None:
        """100 * hits / total over the buckets; None without samples."""
        hits, total = self.totals(first, last)
        return 100.0 * hits / total if total else None
