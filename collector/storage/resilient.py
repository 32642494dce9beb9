"""Writes until stored: backoff while storage refuses, dead-letter for points it never accepts.

``write`` returns True only when every point is stored, or (for points the server refuses for
good: field type conflict, unparsable, beyond retention) stored as a ``schoolmon_reject``
dead-letter point carrying the raw line. Any other failure (database missing, credentials,
5xx, no answer...) means "not stored": it is retried with capped backoff and nothing is acked
meanwhile; one log line names the cause and the fix, repeated at most every ``log_every``.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from collector.storage import PointWriter, StorageError, StorageHealth
from collector.storage.lineprotocol import format_line

log = logging.getLogger(__name__)

# A raw line kept in a dead-letter point: long enough for any sample the wire allows a field
# of, short enough to stay a small string field.
DEAD_LETTER_LINE_CHARS = 4000
_IDENTITY_RE = re.compile(r",(agent|district|school)=((?:\\.|[^,\s\\])+)")


@dataclass
class WriteStats:
    """Counters for the collector's own health."""

    written: int = 0
    retries: int = 0
    quarantined: int = 0
    failing: bool = False
    failure_cause: str = ""


class ResilientWriter:
    """Keeps trying until the points are stored (or the collector stops)."""

    def __init__(self, writer: PointWriter, stop: threading.Event, *,
                 max_delay: float = 30.0, first_delay: float = 0.5,
                 wait: Callable[[float], bool] | None = None,
                 on_quarantine: Callable[[str, StorageError], None] | None = None,
                 log_every: float = 300.0, clock: Callable[[], float] = time.time,
                 name: str | None = None) -> None:
        # ``name``: the collector's client id, the ``collector`` tag of its own points.
        self.writer = writer
        self.stop = stop
        self.max_delay = max_delay
        self.first_delay = first_delay
        self.wait = wait or stop.wait  # returns True when stopping
        self.on_quarantine = on_quarantine
        self.log_every = log_every
        self.clock = clock
        self.name = name or socket.gethostname()
        self.stats = WriteStats()
        self._health = StorageHealth()
        self._health_lock = threading.Lock()  # health() is read by the alert thread
        self._logged: tuple[str, float] | None = None  # (cause, when) of the last error line
        self._quarantine_logged: dict[str, float] = {}
        self._own: list[str] = []  # schoolmon_collector points waiting for the next write
        self._last_ts_ms = 0
        # The writer threads and the collector's own writes (rules) share this writer and
        # write at once (InfluxDB takes concurrent writes on all its cores); this lock guards
        # the counters, the health and the collector's own points, never a write itself.
        self._state_lock = threading.RLock()

    def health(self) -> StorageHealth:
        """Failing or not, since when, why; counters (safe from any thread)."""
        with self._health_lock:
            return self._health

    def write(self, lines: list[str]) -> bool:
        """True when every point is stored or dead-lettered; False if stopped first.

        Safe from several threads at once: each write is retried on its own.
        """
        with self._state_lock:
            own, self._own = self._own, []
        batch = own + lines
        rejected: list[tuple[str, StorageError]] = []

        def store() -> None:
            rejected.clear()
            self._store(batch, rejected)

        if not self._retrying(store):
            with self._state_lock:
                self._own = own + self._own
            return False
        with self._state_lock:
            self.stats.written += len(batch) - len(rejected)
            dead = [self._dead_letter(line, exc) for line, exc in rejected]
        if rejected:
            # The dead-letter must be stored before anything is acked; it is retried like
            # any write (a refusal of it as well: it is never dropped).
            if not self._retrying(lambda: self._store_dead(dead)):
                return False
            self._quarantined(rejected)
        return True

    def _store(self, lines: list[str], rejected: list[tuple[str, StorageError]]) -> None:
        """Write; halve on 413 and on refused points until each refused point stands alone."""
        try:
            self.writer.write(lines)
        except StorageError as exc:
            if exc.action == "retry":
                raise
            if len(lines) == 1:  # refused for good (or too large even alone)
                rejected.append((lines[0], exc))
                return
            half = len(lines) // 2
            self._store(lines[:half], rejected)
            self._store(lines[half:], rejected)

    def _store_dead(self, lines: list[str]) -> None:
        """Store dead-letter points (split on 413 like any batch); never drop one."""
        refused: list[tuple[str, StorageError]] = []
        self._store(lines, refused)
        if refused:
            exc = refused[0][1]
            raise StorageError(f"storage refused a dead-letter point itself ({exc}): nothing "
                               "is acked until it takes it", exc.status,
                               cause="dead_letter_refused", action="retry")

    def _retrying(self, attempt: Callable[[], None]) -> bool:
        delay = self.first_delay
        while True:
            try:
                attempt()
            except StorageError as exc:
                self._failed(exc)
                if exc.retry_after is not None:  # the server's wish: never earlier
                    pause = min(exc.retry_after, self.max_delay)
                else:
                    # Jitter so several collectors do not hammer a recovering server in step.
                    pause = min(delay, self.max_delay) * random.uniform(0.8, 1.0)
                if self.wait(pause):
                    return False
                delay = min(delay * 2, self.max_delay)
                continue
            if self._health.failing:
                self._recovered()
            return True

    def _failed(self, exc: StorageError) -> None:
        with self._state_lock:
            self._failed_locked(exc)

    def _failed_locked(self, exc: StorageError) -> None:
        self.stats.retries += 1
        self.stats.failing, self.stats.failure_cause = True, exc.cause
        now = self.clock()
        with self._health_lock:
            health = self._health
            since = health.failing_since_ms if health.failing else int(now * 1000)
            self._health = replace(health, failing_since_ms=since, cause=exc.cause,
                                   message=str(exc), failures_total=health.failures_total + 1)
        if self._logged is None or self._logged[0] != exc.cause \
                or now - self._logged[1] >= self.log_every:
            self._logged = (exc.cause, now)
            log.error("storage is not storing writes, nothing is acked meanwhile: %s", exc)

    def _recovered(self) -> None:
        with self._state_lock:
            if self._health.failing:  # another writer thread may have seen it first
                self._recovered_locked()

    def _recovered_locked(self) -> None:
        now_ms = int(self.clock() * 1000)
        with self._health_lock:
            health = self._health
            self._health = replace(health, failing_since_ms=None)
        since = health.failing_since_ms or now_ms
        log.info("storage is back after %.0f s (was: %s); writing again",
                 (now_ms - since) / 1000, health.cause)
        self.stats.failing = False
        self._logged = None
        # The outage as a step in the collector's own series: failing from its start to now.
        fields: dict[str, float | str] = {
            "storage_failure_cause": health.cause, "failures_total": health.failures_total,
            "quarantined_total": health.quarantined_total}
        self._own.append(format_line("schoolmon_collector", {"collector": self.name},
                                     {"storage_failing": 1, **fields}, since))
        self._own.append(format_line("schoolmon_collector", {"collector": self.name},
                                     {"storage_failing": 0, **fields}, max(now_ms, since + 1)))

    def _unique_ms(self) -> int:
        ts_ms = max(int(self.clock() * 1000), self._last_ts_ms + 1)
        self._last_ts_ms = ts_ms
        return ts_ms

    def _dead_letter(self, line: str, exc: StorageError) -> str:
        """The ``schoolmon_reject`` point keeping a refused line, its cause and its sender."""
        # ``collector`` as on every reject point: two collectors' points never overwrite.
        tags = {"cause": f"storage_{exc.cause}", "source": "storage", "collector": self.name}
        for key, value in _IDENTITY_RE.findall(line):
            tags.setdefault(key, re.sub(r"\\(.)", r"\1", value))
        fields: dict[str, float | str] = {
            "count": 1, "detail": str(exc)[:200], "line": line[:DEAD_LETTER_LINE_CHARS]}
        if len(line) > DEAD_LETTER_LINE_CHARS:
            fields["line_chars"] = len(line)
        return format_line("schoolmon_reject", tags, fields, self._unique_ms())

    def _quarantined(self, rejected: list[tuple[str, StorageError]]) -> None:
        with self._state_lock:
            self._quarantined_locked(rejected)

    def _quarantined_locked(self, rejected: list[tuple[str, StorageError]]) -> None:
        now = self.clock()
        self.stats.quarantined += len(rejected)
        with self._health_lock:
            self._health = replace(self._health, quarantined_total=self.stats.quarantined)
        by_cause: dict[str, list[tuple[str, StorageError]]] = {}
        for line, exc in rejected:
            by_cause.setdefault(exc.cause, []).append((line, exc))
        for cause, items in by_cause.items():
            if now - self._quarantine_logged.get(cause, -1e18) >= self.log_every:
                self._quarantine_logged[cause] = now
                line, exc = items[0]
                log.error("storage refused %d point(s) for good (%s), kept as schoolmon_reject "
                          "(field 'line'); %d so far; first: %s (%s)", len(items), cause,
                          self.stats.quarantined, line[:300], exc)
        self._own.append(format_line("schoolmon_collector", {"collector": self.name},
                                     {"quarantined_total": self.stats.quarantined},
                                     self._unique_ms()))
        if self.on_quarantine is not None:
            for line, exc in rejected:
                self.on_quarantine(line, exc)
