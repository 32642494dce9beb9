"""The on-disk queue: every batch stays here until a collector says InfluxDB stored it.

SQLite in WAL mode with ``synchronous=FULL``: a batch that ``append`` returned for survives a
power cut or SIGKILL.  The batch id is an AUTOINCREMENT rowid, so it doubles as the envelope's
``seq``: it increases for the life of the spool file and is never reused after deletes.  The
spool is bounded by bytes and by age; when over, the oldest batches go first and the samples
they held are added to ``dropped_total`` (kept in the same database, so the count is exact
across restarts).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.probes.base import WallClockMs, wall_clock_ms

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    samples    INTEGER NOT NULL,
    payload    BLOB    NOT NULL,
    sent_ms    INTEGER            -- NULL: not sent since created or since the last reconnect
);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counter VALUES ('dropped_total', 0);
"""


class SpoolWriteError(Exception):
    """The spool could not store a batch (disk full, read-only, corrupt): the batch is lost."""


@dataclass(frozen=True)
class Batch:
    """One spooled batch: its seq and the encoded samples array."""

    seq: int
    samples: int
    payload: bytes


@dataclass(frozen=True)
class SpoolStats:
    """Gauges for the ``agent`` sample."""

    depth: int
    bytes: int
    dropped_total: int


class Spool:
    """Thread-safe queue of batches on disk."""

    def __init__(self, path: str | Path, max_bytes: int, max_age_s: float,
                 clock_ms: WallClockMs = wall_clock_ms) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_ms = int(max_age_s * 1000)
        self.clock_ms = clock_ms
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._bytes = 0

    def open(self) -> Spool:
        """Create or open the database file (and its directory, private to this user)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolWriteError(f"cannot open spool {self.path}: {exc}") from None
        self._db = db
        self._bytes = int(db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM batch")
                          .fetchone()[0])
        # Anything marked sent by a previous run was never acked: send it again.
        db.execute("UPDATE batch SET sent_ms = NULL WHERE sent_ms IS NOT NULL")
        return self

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection."""
        if self._db is None:
            raise RuntimeError("spool is not open")
        return self._db

    def append(self, payload: bytes, samples: int) -> int:
        """Store a batch durably and return its seq; evicts the oldest when over the bounds."""
        now = self.clock_ms()
        if self._db is None:
            raise SpoolWriteError(f"spool {self.path} is not open")
        try:
            with self._transaction() as db:  # the row and any eviction together
                cur = db.execute(
                    "INSERT INTO batch (created_ms, samples, payload) VALUES (?, ?, ?)",
                    (now, samples, payload),
                )
                self._bytes += len(payload)
                self._evict(now)
        except (sqlite3.Error, RuntimeError) as exc:  # RuntimeError: closed meanwhile
            with self._lock, contextlib.suppress(sqlite3.Error, RuntimeError):
                self._bytes = int(self.db.execute(
                    "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM batch").fetchone()[0])
            raise SpoolWriteError(f"spool {self.path}: {exc}") from None
        return int(cur.lastrowid or 0)

    def _evict(self, now_ms: int) -> None:
        dropped = 0
        for seq, n, size in self.db.execute(
            "SELECT seq, samples, LENGTH(payload) FROM batch WHERE created_ms < ? ORDER BY seq",
            (now_ms - self.max_age_ms,),
        ).fetchall():
            self.db.execute("DELETE FROM batch WHERE seq = ?", (seq,))
            dropped += n
            self._bytes -= size
        while self._bytes > self.max_bytes:
            row = self.db.execute(
                "SELECT seq, samples, LENGTH(payload) FROM batch ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                break
            self.db.execute("DELETE FROM batch WHERE seq = ?", (row[0],))
            dropped += row[1]
            self._bytes -= row[2]
        if dropped:
            self.db.execute(
                "UPDATE counter SET value = value + ? WHERE name = 'dropped_total'", (dropped,)
            )
            log.warning("spool over its bounds: dropped the %d oldest samples", dropped)

    def due(self, limit: int, resend_before_ms: int) -> list[Batch]:
        """Oldest batches never sent, or sent before ``resend_before_ms`` and still not acked."""
        if limit <= 0:
            return []
        with self._lock:
            rows = self.db.execute(
                "SELECT seq, samples, payload FROM batch WHERE sent_ms IS NULL OR sent_ms < ? "
                "ORDER BY seq LIMIT ?",
                (resend_before_ms, limit),
            ).fetchall()
        return [Batch(int(s), int(n), bytes(p)) for s, n, p in rows]

    def in_flight(self, since_ms: int) -> int:
        """Batches sent at or after ``since_ms`` and not yet acked."""
        with self._lock:
            row = self.db.execute(
                "SELECT COUNT(*) FROM batch WHERE sent_ms >= ?", (since_ms,)
            ).fetchone()
        return int(row[0])

    def mark_sent(self, seqs: list[int], now_ms: int) -> None:
        """Record that these batches went out."""
        with self._transaction() as db:
            db.executemany("UPDATE batch SET sent_ms = ? WHERE seq = ?",
                                [(now_ms, s) for s in seqs])

    def mark_unsent(self) -> None:
        """After a reconnect: every un-acked batch is due again."""
        with self._lock:
            self.db.execute("UPDATE batch SET sent_ms = NULL WHERE sent_ms IS NOT NULL")

    def ack(self, ranges: list[tuple[int, int]]) -> int:
        """Delete acknowledged batches; returns how many were deleted."""
        removed = 0
        with self._transaction():
            for first, last in ranges:
                size = self.db.execute(
                    "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM batch WHERE seq BETWEEN ? AND ?",
                    (first, last),
                ).fetchone()[0]
                removed += self.db.execute(
                    "DELETE FROM batch WHERE seq BETWEEN ? AND ?", (first, last)
                ).rowcount
                self._bytes -= int(size)
        return removed

    def stats(self) -> SpoolStats:
        """Depth, bytes and dropped_total."""
        with self._lock:
            depth = int(self.db.execute("SELECT COUNT(*) FROM batch").fetchone()[0])
            dropped = int(self.db.execute(
                "SELECT value FROM counter WHERE name = 'dropped_total'").fetchone()[0])
        return SpoolStats(depth, self._bytes, dropped)
