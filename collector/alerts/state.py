"""Alert state on disk (SQLite): alerts, notification groups and the mail outbox.

A collector restart reloads all three, so an alert already mailed is not mailed again, a
resolved mail still goes out later, and a mail that could not be sent is retried.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson

from collector.alerts.model import Alert, AlertKey, Severity
from collector.alerts.settings import ALERT_NAMES, AlertName

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, school TEXT NOT NULL, subject TEXT NOT NULL,
    severity TEXT NOT NULL, district TEXT NOT NULL, labels BLOB NOT NULL, figures BLOB NOT NULL,
    starts_ms INTEGER NOT NULL, last_firing_ms INTEGER NOT NULL, ends_ms INTEGER,
    notified TEXT, held INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS grp (
    school TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, last_sent_ms INTEGER);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, school TEXT NOT NULL, created_ms INTEGER NOT NULL,
    message BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
"""


@dataclass
class AlertRecord:
    """An alert the notifier knows: firing, or resolved and not yet mailed as resolved."""

    alert: Alert
    starts_ms: int
    last_firing_ms: int
    ends_ms: int | None = None
    notified: str | None = None  # the severity last mailed as firing; None: never mailed
    held: bool = False  # was due during quiet hours: mail it even if it resolves meanwhile
    saved_firing_ms: int = 0  # last_firing_ms as written, to write it only now and then


@dataclass
class GroupRecord:
    """One school's notification group."""

    school: str
    created_ms: int
    last_sent_ms: int | None = None


@dataclass(frozen=True)
class OutboxItem:
    """A rendered mail waiting for the SMTP server."""

    id: int
    school: str
    created_ms: int
    message: bytes
    attempts: int


class AlertStore:
    """The SQLite file behind the notifier (one connection, used under the engine's lock)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All changes inside commit together (state and outbox) or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def load_alerts(self) -> dict[str, AlertRecord]:
        """Every alert record."""
        records: dict[str, AlertRecord] = {}
        for row in self._db.execute(
                "SELECT name, school, subject, severity, district, labels, figures, starts_ms,"
                " last_firing_ms, ends_ms, notified, held FROM alert"):
            if row[0] not in ALERT_NAMES:
                continue  # written by a newer version
            key = AlertKey(cast(AlertName, row[0]), row[1], row[2])
            alert = Alert(key, cast(Severity, row[3]), row[4], row[7], orjson.loads(row[5]),
                          orjson.loads(row[6]))
            records[key.id] = AlertRecord(alert, row[7], row[8], row[9], row[10], bool(row[11]),
                                          row[8])
        return records

    def save_alert(self, rec: AlertRecord) -> None:
        """Insert or replace one alert record."""
        a = rec.alert
        self._db.execute(
            "INSERT OR REPLACE INTO alert VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (a.key.id, a.name, a.school, a.key.subject, a.severity, a.district,
             orjson.dumps(a.labels), orjson.dumps(a.figures), rec.starts_ms, rec.last_firing_ms,
             rec.ends_ms, rec.notified, int(rec.held)))
        rec.saved_firing_ms = rec.last_firing_ms

    def delete_alert(self, alert_id: str) -> None:
        """Forget one alert."""
        self._db.execute("DELETE FROM alert WHERE id = ?", (alert_id,))

    def load_groups(self) -> dict[str, GroupRecord]:
        """Every group."""
        return {row[0]: GroupRecord(row[0], row[1], row[2])
                for row in self._db.execute("SELECT school, created_ms, last_sent_ms FROM grp")}

    def save_group(self, group: GroupRecord) -> None:
        """Insert or replace a group."""
        self._db.execute("INSERT OR REPLACE INTO grp VALUES (?,?,?)",
                         (group.school, group.created_ms, group.last_sent_ms))

    def delete_group(self, school: str) -> None:
        """Forget a group."""
        self._db.execute("DELETE FROM grp WHERE school = ?", (school,))

    def add_outbox(self, school: str, created_ms: int, message: bytes) -> None:
        """Queue a rendered mail."""
        self._db.execute("INSERT INTO outbox (school, created_ms, message) VALUES (?,?,?)",
                         (school, created_ms, message))

    def outbox(self) -> list[OutboxItem]:
        """Mails waiting, oldest first."""
        rows: list[Any] = self._db.execute(
            "SELECT id, school, created_ms, message, attempts FROM outbox ORDER BY id").fetchall()
        return [OutboxItem(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    def sent(self, item_id: int) -> None:
        """A mail the server accepted."""
        self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def failed(self, item_id: int) -> None:
        """Count a failed attempt."""
        self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (item_id,))
