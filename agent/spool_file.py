"""The spool's SQLite file: schema, pragmas, the disk-full reserve beside it, and its size.

Split from agent/spool.py, which holds the queue's logic; this module knows only the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    samples    INTEGER NOT NULL,
    payload    BLOB    NOT NULL,
    sent_ms    INTEGER            -- unused since delivery state moved to memory; kept for old files
);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counter VALUES ('dropped_total', 0);
INSERT OR IGNORE INTO counter VALUES ('rejected_total', 0);
"""
WAL_LIMIT = 256 * 1024  # checkpoint and truncate the WAL at this size
RESERVE = 256 * 1024  # room for the writes that free space on a full disk
MIN_FILE_BOUND = 1024 * 1024  # below this the file bound would evict a spool's first pages


def is_full(exc: BaseException) -> bool:
    """True for SQLite's "database or disk is full"."""
    return isinstance(exc, sqlite3.Error) and (
        getattr(exc, "sqlite_errorcode", None) == 13 or "full" in str(exc))


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating when missing) the spool file with its pragmas and schema."""
    # 0600 however the agent is started (umask 022 outside systemd): SQLite gives its -wal
    # and -shm files the mode of the database file; older files are tightened too.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        # Before the first table, or it has no effect: lets a full disk get space back.
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        # Debian's SQLite zeroes every freed page by default: an eviction would then write
        # (to the WAL) as many bytes as it frees, impossible on a full disk.
        db.execute("PRAGMA secure_delete=FAST")
        page = int(db.execute("PRAGMA page_size").fetchone()[0])
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_LIMIT // page}")
        if db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'counter'"
                      ).fetchone()[0] == 0 or db.execute(
                "SELECT COUNT(*) FROM counter").fetchone()[0] < 2:
            db.executescript(SCHEMA)  # writes only when something is missing
    except BaseException:
        db.close()
        raise
    return db


def make_reserve(path: Path) -> None:
    """Allocate the reserve file unless it exists; no room for it now is not an error."""
    if path.exists():
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE)
        finally:
            os.close(fd)
    except OSError:  # no room for it now: the spool tries again later
        with contextlib.suppress(OSError):
            path.unlink()


def release_reserve(path: Path) -> bool:
    """Give the reserve back to the file system; False when there was none."""
    try:
        path.unlink()
    except OSError:
        return False
    return True


def checkpoint(db: sqlite3.Connection) -> None:
    """Checkpoint and truncate the WAL (gives its space back); errors are ignored."""
    with contextlib.suppress(sqlite3.Error):
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def file_bytes(db: sqlite3.Connection) -> int:
    """Bytes the spool may hold on disk: pages in use, plus the WAL and reserve bounds."""
    used = (int(db.execute("PRAGMA page_count").fetchone()[0])
            - int(db.execute("PRAGMA freelist_count").fetchone()[0]))
    return used * int(db.execute("PRAGMA page_size").fetchone()[0]) + WAL_LIMIT + RESERVE
