"""The durable half of the spool: storing batches, their bounds, the disk-full path, the counts.

SQLite in WAL mode with ``synchronous=FULL``: a batch that ``append`` returned for survives a
power cut or SIGKILL.  The batch id is an AUTOINCREMENT rowid, so it doubles as the envelope's
``seq``: it increases for the life of the spool file and is never reused after deletes.

Bounds: payload bytes, age, and the file on disk (SQLite's pages in use plus the WAL, which is
checkpointed every ``WAL_LIMIT`` bytes and truncated back to that size, so it cannot grow to
fill the disk).  When over, the oldest batches go first.  A disk that fills up anyway (other
files, a small card) is a counted event, never a crash: on SQLITE_FULL the oldest batches are
evicted to make room and the append is retried; a batch that still cannot be stored is dropped.
Every dropped sample is added to ``dropped_total``, kept in the database; a drop that could not
be written (the disk was full) is held in memory and folded into the next transaction that
succeeds.  ``RESERVE`` bytes are kept allocated in a file beside the spool and given back to
the file system when the disk is full, so that next transaction (evictions, the count, a
checkpoint) has room: the count is exact across restarts unless the agent dies in the moment
between a failed write and the release of the reserve.

Delivery state (sent when, how many times) lives in memory only (agent/delivery.py); the file,
its pragmas and the reserve are agent/spool_file.py.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from agent import spool_file
from agent.delivery import DeliveryState, MonotonicMs, monotonic_ms
from agent.probes.base import WallClockMs, wall_clock_ms
from agent.spool_file import is_full

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

_RESERVE_RETRY_MS = 60_000
_FULL_LOG_EVERY_MS = 60_000


class SpoolWriteError(Exception):
    """The spool could not store a batch (disk full, read-only, corrupt): the batch is lost."""


@dataclass(frozen=True)
class SpoolStats:
    """Gauges for the ``agent`` sample."""

    depth: int
    bytes: int
    dropped_total: int
    rejected_total: int = 0


class SpoolStore:
    """Thread-safe store of batches on disk (delivery and merging: agent/spool.py Spool)."""

    def __init__(self, path: str | Path, max_bytes: int, max_age_s: float,
                 clock_ms: WallClockMs = wall_clock_ms,
                 mono_ms: MonotonicMs = monotonic_ms) -> None:
        self.path = Path(path)
        self.reserve_path = self.path.with_name(self.path.name + "-reserve")
        self.max_bytes = max_bytes
        self.file_bound = max(max_bytes, spool_file.MIN_FILE_BOUND)
        self.max_age_ms = int(max_age_s * 1000)
        self.clock_ms = clock_ms
        self.mono_ms = mono_ms
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._bytes = 0
        self._delivery = DeliveryState()
        self._pending: dict[str, int] = {"dropped_total": 0, "rejected_total": 0}
        self._reserve_tried_ms: int | None = None
        self._full_logged_ms: int | None = None
        self._full_evicted = 0

    def open(self) -> Self:
        """Create or open the database file (and its directory, private to this user)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise SpoolWriteError(f"cannot open spool {self.path}: {exc}") from None
        try:
            db = spool_file.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            if not is_full(exc) or not self._release_reserve():
                raise SpoolWriteError(f"cannot open spool {self.path}: {exc}") from None
            try:  # an agent must start on a full spool and deliver what it holds
                db = spool_file.connect(self.path)
            except (OSError, sqlite3.Error) as exc2:
                raise SpoolWriteError(f"cannot open spool {self.path}: {exc2}") from None
        self._db = db
        self._bytes = self._payload_bytes()
        self._delivery = DeliveryState()  # nothing of a previous process is fresh
        self._make_reserve()
        return self

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            if self._db is not None:
                self._flush_pending()
                self._db.close()
                self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection."""
        if self._db is None:
            raise RuntimeError("spool is not open")
        return self._db

    def _payload_bytes(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM batch")
                   .fetchone()[0])

    # --- the reserve: disk space set aside for the writes that make room on a full disk ---

    def _make_reserve(self) -> None:
        self._reserve_tried_ms = self.clock_ms()
        spool_file.make_reserve(self.reserve_path)

    def _release_reserve(self) -> bool:
        return spool_file.release_reserve(self.reserve_path)

    def _checkpoint(self) -> None:
        spool_file.checkpoint(self.db)

    # --- writes ---

    def _write(self, body: Callable[[sqlite3.Connection], int]) -> int:
        """Run ``body`` in one transaction with the pending counts; on a full disk, checkpoint
        (the WAL gives its space back) and try once more.  The reserve is not touched here:
        only ``_make_room`` may use it, and it shrinks the file before taking it back."""
        for attempt in range(2):
            db = self.db
            pending = dict(self._pending)  # what the body adds is undone with a rollback
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = body(db)
                    for name, n in self._pending.items():
                        if n:
                            db.execute("UPDATE counter SET value = value + ? WHERE name = ?",
                                       (n, name))
                    db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self._pending = pending
                self._bytes = self._payload_bytes_or_keep()
                if attempt == 0 and is_full(exc):
                    self._checkpoint()
                    continue
                raise
            self._pending = dict.fromkeys(self._pending, 0)
            return result
        raise AssertionError("unreachable")

    def _payload_bytes_or_keep(self) -> int:
        try:
            return self._payload_bytes()
        except sqlite3.Error:
            return self._bytes

    def _flush_pending(self) -> None:
        """Write counts held in memory; on a full disk the reserve gives the room for it."""
        for _ in range(2):
            if not any(self._pending.values()):
                return
            try:
                self._write(lambda _db: 0)
            except (sqlite3.Error, RuntimeError):
                self._release_reserve()
                self._checkpoint()

    def append(self, payload: bytes, samples: int) -> int:
        """Store a batch durably and return its seq; evicts the oldest when over the bounds.

        On a full disk the oldest batches are evicted until this one fits; if it never does,
        its samples are counted as dropped and SpoolWriteError is raised.
        """
        now = self.clock_ms()
        with self._lock:
            if self._db is None:
                self._pending["dropped_total"] += samples  # reported by stats() while open
                raise SpoolWriteError(f"spool {self.path} is not open")
            step = 1
            while True:
                try:
                    seq = self._write(lambda db: self._insert(db, now, payload, samples))
                    self._delivery.stored(seq, self.mono_ms())
                    break
                except sqlite3.Error as exc:
                    if not (is_full(exc) and self._make_room(step)):
                        self._pending["dropped_total"] += samples
                        raise SpoolWriteError(f"spool {self.path}: {exc}; {samples} samples "
                                              "dropped (counted in dropped_total)") from None
                    step *= 2
            if self._reserve_tried_ms is None or now - self._reserve_tried_ms > _RESERVE_RETRY_MS:
                self._make_reserve()
        return seq

    def _depth(self) -> int:
        try:
            return int(self.db.execute("SELECT COUNT(*) FROM batch").fetchone()[0])
        except sqlite3.Error:
            return 0

    def _make_room(self, batches: int) -> int:
        """Free space on a full disk: the reserve and the WAL first, then the oldest batches in
        transactions of their own (small, so they fit where a big one would not), their pages
        handed back to the file system, until the reserve can be taken again: growing without
        it could leave no room even to evict (a checkpoint that must extend the file)."""
        self._release_reserve()
        self._checkpoint()
        evicted = 0
        while True:
            try:
                rows = self.db.execute("SELECT seq, samples, LENGTH(payload) FROM batch "
                                       "ORDER BY seq LIMIT ?", (batches,)).fetchall()
                if rows:
                    self._drop_committed(rows)
                # executescript: execute() steps this pragma once, freeing a single page.
                self.db.executescript("PRAGMA incremental_vacuum;")
            except sqlite3.Error:
                break
            self._checkpoint()  # the file shrinks here
            evicted += len(rows)
            self._full_evicted += sum(r[1] for r in rows)
            self._make_reserve()
            if not rows or self.reserve_path.exists():
                break
            batches *= 2
        now = self.clock_ms()
        if self._full_logged_ms is None or now - self._full_logged_ms >= _FULL_LOG_EVERY_MS:
            # One line a minute, not one per batch: a full disk lasts.
            self._full_logged_ms = now
            log.warning("spool %s: disk full; evicting the oldest batches to make room "
                        "(%d samples so far, counted in dropped_total)",
                        self.path, self._full_evicted)
        return evicted

    def _drop_committed(self, rows: list[tuple[int, int, int]]) -> None:
        self._write(lambda db: self._drop_rows(db, rows))

    def _insert(self, db: sqlite3.Connection, now: int, payload: bytes, samples: int) -> int:
        cur = db.execute("INSERT INTO batch (created_ms, samples, payload) VALUES (?, ?, ?)",
                         (now, samples, payload))
        self._bytes += len(payload)
        self._evict(db, now)
        return int(cur.lastrowid or 0)

    def _drop_rows(self, db: sqlite3.Connection, rows: list[tuple[int, int, int]]) -> int:
        db.executemany("DELETE FROM batch WHERE seq = ?", [(r[0],) for r in rows])
        self._pending["dropped_total"] += sum(r[1] for r in rows)
        self._bytes -= sum(r[2] for r in rows)
        for r in rows:
            self._delivery.forget(r[0])
        return len(rows)

    def _evict(self, db: sqlite3.Connection, now_ms: int) -> None:
        before = self._pending["dropped_total"]
        self._drop_rows(db, db.execute(
            "SELECT seq, samples, LENGTH(payload) FROM batch WHERE created_ms < ? ORDER BY seq",
            (now_ms - self.max_age_ms,)).fetchall())
        while self._bytes > self.max_bytes or spool_file.file_bytes(db) > self.file_bound:
            rows = db.execute("SELECT seq, samples, LENGTH(payload) FROM batch ORDER BY seq "
                              "LIMIT 1").fetchall()
            if not rows:
                break
            self._drop_rows(db, rows)
        if self._pending["dropped_total"] > before:
            log.warning("spool over its bounds: dropped the %d oldest samples",
                        self._pending["dropped_total"] - before)

    def ack(self, ranges: list[tuple[int, int]]) -> int:
        """Delete acknowledged batches; returns how many were deleted."""
        with self._lock:
            return self._write(lambda db: self._delete_ranges(db, ranges))

    def _delete_ranges(self, db: sqlite3.Connection, ranges: list[tuple[int, int]]) -> int:
        removed = 0
        for first, last in ranges:
            size = db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM batch "
                              "WHERE seq BETWEEN ? AND ?", (first, last)).fetchone()[0]
            removed += db.execute("DELETE FROM batch WHERE seq BETWEEN ? AND ?",
                                  (first, last)).rowcount
            self._bytes -= int(size)
            self._delivery.forget_range(first, last)
        return removed

    def reject(self, seqs: list[int]) -> int:
        """Delete batches the collector will never accept; returns their samples (dropped)."""
        with self._lock:
            def body(db: sqlite3.Connection) -> int:
                rows = [r for s in seqs for r in db.execute(
                    "SELECT seq, samples, LENGTH(payload) FROM batch WHERE seq = ?", (s,))]
                self._drop_rows(db, rows)
                n = sum(int(r[1]) for r in rows)
                db.execute("UPDATE counter SET value = value + ? WHERE name = 'rejected_total'",
                           (n,))
                return n
            return self._write(body)

