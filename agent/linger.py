"""publish.linger: which fresh batches go out now, merged, and which wait a little longer.

A probe run spools its samples as one batch; without lingering each batch is one MQTT message,
so a gateway polling its interfaces every 10 s sends hundreds of small messages an hour.  With
a linger of L, a fresh batch (stored by this process, never published) waits until L has passed
since the oldest fresh batch was stored; then every fresh batch stored within L of that oldest
one is merged with it into one batch (``Spool.merge``: one SQLite transaction), within the
wire's limits.  So a sample waits at most L, and a backlog (everything older than L) is due at
once, merged by windows of L.  A group never spans more than L of storing time: a collector
refusing one merged batch (too old, say) refuses at most one window's samples.

Batches published once (their seq may be in flight) and batches from before a restart (the
previous process may have published them) are not fresh: never merged, never held.  Times are
monotonic: a wall clock step neither holds samples nor releases them early.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.scheduler import ENVELOPE_HEAD_MAX
from agent.spool import FreshBatch, Spool
from common.wire import MAX_PAYLOAD_BYTES, MAX_SAMPLES_PER_BATCH

# A merged samples array must leave room for the envelope around it (like split_by_bytes).
MAX_MERGED_BYTES = MAX_PAYLOAD_BYTES - ENVELOPE_HEAD_MAX


@dataclass
class Plan:
    """Groups of fresh seqs to merge now (each becomes its first seq) and the seqs held."""

    groups: list[list[int]] = field(default_factory=list)
    held: set[int] = field(default_factory=set)


def plan(fresh: list[FreshBatch], now_ms: int, linger_ms: int, *, flush: bool = False,
         max_groups: int | None = None) -> Plan:
    """Group due fresh batches (oldest first) within the linger window and the wire limits.

    ``flush`` (a clean stop): nothing waits.  ``max_groups``: plan no more groups than can be
    published now; the rest are neither merged nor held and are planned again next time.
    """
    out = Plan()
    i = 0
    while i < len(fresh):
        first = fresh[i]
        if not flush and now_ms < first.stored_mono_ms + linger_ms:
            out.held.update(b.seq for b in fresh[i:])  # stored in order: all younger
            break
        if max_groups is not None and len(out.groups) >= max_groups:
            break
        group, samples, size = [first.seq], first.samples, first.size
        i += 1
        while i < len(fresh):
            b = fresh[i]
            if (b.stored_mono_ms > first.stored_mono_ms + linger_ms
                    or samples + b.samples > MAX_SAMPLES_PER_BATCH
                    or size + b.size > MAX_MERGED_BYTES):
                break
            group.append(b.seq)
            samples, size = samples + b.samples, size + b.size
            i += 1
        out.groups.append(group)
    return out


def coalesce(spool: Spool, linger_ms: int, *, flush: bool = False,
             max_groups: int | None = None) -> set[int]:
    """Merge the due groups of fresh batches in the spool; returns the seqs that may go now.

    Every fresh batch not returned is still lingering (``Spool.due(ready=...)`` skips it).
    """
    p = plan(spool.fresh(), spool.mono_ms(), linger_ms, flush=flush, max_groups=max_groups)
    spool.merge(p.groups)
    # A group whose merge failed (a full disk) goes out as it is: every member is ready.
    return {seq for group in p.groups for seq in group}
