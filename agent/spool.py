"""The on-disk queue: every batch stays here until a collector says InfluxDB stored it.

``Spool`` is the store (agent/spool_store.py: durability, bounds, the disk-full path, the
counts) plus what delivery needs: which batches are due, in flight, and, for publish.linger,
the merging of fresh batches (stored by this process, never published) into fewer.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass

from agent.delivery import NoWait, no_extra_wait
from agent.spool_store import SpoolStats, SpoolStore, SpoolWriteError

log = logging.getLogger(__name__)

__all__ = ["Batch", "FreshBatch", "Spool", "SpoolStats", "SpoolWriteError", "join_arrays"]


@dataclass(frozen=True)
class Batch:
    """One spooled batch: its seq and the encoded samples array."""

    seq: int
    samples: int
    payload: bytes


@dataclass(frozen=True)
class FreshBatch:
    """A batch publish.linger may still merge: its seq, when it was stored, samples, bytes."""

    seq: int
    stored_mono_ms: int
    samples: int
    size: int


def join_arrays(parts: list[bytes]) -> bytes:
    """One JSON array holding the elements of several (the spool's payloads are arrays)."""
    inner = [p[1:-1] for p in parts if p[1:-1].strip()]
    return b"[" + b",".join(inner) + b"]"


class Spool(SpoolStore):
    """Thread-safe queue of batches on disk."""

    # --- delivery state, in memory ---

    def due(self, limit: int, resend_before_ms: int, extra_wait: NoWait = no_extra_wait,
            ready: Collection[int] | None = None) -> list[Batch]:
        """Oldest batches never sent, or sent before ``resend_before_ms`` (minus the
        ``extra_wait`` of their attempt count: the resend backoff) and still not acked.
        With ``ready`` (publish.linger), a fresh batch not named in it is still lingering."""
        out: list[Batch] = []
        if limit <= 0:
            return out
        with self._lock:
            for seq, n, payload in self.db.execute(
                    "SELECT seq, samples, payload FROM batch ORDER BY seq"):
                if ready is not None and seq in self._delivery.fresh and seq not in ready:
                    continue
                if not self._delivery.waiting(seq, resend_before_ms, extra_wait):
                    out.append(Batch(int(seq), int(n), bytes(payload)))
                    if len(out) == limit:
                        break
        return out

    def in_flight(self, since_ms: int, extra_wait: NoWait = no_extra_wait) -> int:
        """Batches sent and not yet due again (sent at or after ``since_ms``, plus backoff)."""
        with self._lock:
            return self._delivery.in_flight(since_ms, extra_wait)

    def mark_sent(self, seqs: list[int], now_ms: int) -> None:
        """Record that these batches went out (once more)."""
        with self._lock:
            # An ack can overtake this call (paho's thread): a batch already gone is not in
            # flight, or flush would wait for it.
            marks = ",".join("?" * len(seqs))
            present = {int(r[0]) for r in self.db.execute(
                f"SELECT seq FROM batch WHERE seq IN ({marks})", seqs)} if seqs else set()
            self._delivery.mark_sent([s for s in seqs if s in present], now_ms)

    def attempts(self, seq: int) -> int:
        """How often this batch was sent since the last reconnect."""
        with self._lock:
            return self._delivery.attempts(seq)

    def mark_unsent(self) -> None:
        """After a reconnect: every un-acked batch is due again."""
        with self._lock:
            self._delivery.clear()

    # --- publish.linger: fresh batches merged into fewer ---

    def fresh(self) -> list[FreshBatch]:
        """The fresh batches (stored by this process, never published), oldest first."""
        with self._lock:
            fresh = self._delivery.fresh
            if not fresh:
                return []
            rows = self.db.execute("SELECT seq, samples, LENGTH(payload) FROM batch "
                                   "WHERE seq >= ? ORDER BY seq", (min(fresh),)).fetchall()
            out = [FreshBatch(int(seq), fresh[seq], int(n), int(size))
                   for seq, n, size in rows if seq in fresh]
            if len(out) < len(fresh):  # evicted with the transaction that stored them
                self._delivery.fresh = {b.seq: b.stored_mono_ms for b in out}
            return out

    def merge(self, groups: list[list[int]]) -> int:
        """Replace each group of fresh batches by one, in one transaction; returns how many
        batches went away.  The group keeps its first seq (never published, so no ack for it
        can be on its way) and its oldest ``created_ms`` (max_age evicts it no later than its
        oldest part).  On any error nothing changes and the batches go out unmerged."""
        with self._lock:
            fresh = self._delivery.fresh
            groups = [g for g in groups if len(g) > 1 and all(s in fresh for s in g)]
            if not groups:
                return 0
            try:
                removed = self._write(lambda db: sum(self._merge_group(db, g) for g in groups))
            except sqlite3.Error as exc:
                log.debug("spool %s: batches not merged: %s", self.path, exc)
                return 0
            for g in groups:
                fresh[g[0]] = min(fresh[s] for s in g)
                for seq in g[1:]:
                    del fresh[seq]
            return removed

    def _merge_group(self, db: sqlite3.Connection, group: list[int]) -> int:
        rows = [db.execute("SELECT created_ms, samples, payload FROM batch WHERE seq = ?",
                           (seq,)).fetchone() for seq in group]
        parts = [bytes(r[2]) for r in rows]
        payload = join_arrays(parts)
        db.execute("UPDATE batch SET created_ms = ?, samples = ?, payload = ? WHERE seq = ?",
                   (min(r[0] for r in rows), sum(int(r[1]) for r in rows), payload, group[0]))
        db.executemany("DELETE FROM batch WHERE seq = ?", [(seq,) for seq in group[1:]])
        self._bytes += len(payload) - sum(len(p) for p in parts)
        return len(group) - 1

    def stats(self) -> SpoolStats:
        """Depth, bytes, dropped_total (including drops not yet written) and rejected_total."""
        with self._lock:
            counts = dict(self.db.execute("SELECT name, value FROM counter").fetchall())
            depth = int(self.db.execute("SELECT COUNT(*) FROM batch").fetchone()[0])
            return SpoolStats(depth, self._bytes,
                              int(counts["dropped_total"]) + self._pending["dropped_total"],
                              int(counts["rejected_total"]) + self._pending["rejected_total"])

