"""Retry with capped exponential backoff, Retry-After, and isolation of points InfluxDB refuses."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from collector.storage import PointWriter, StorageError

log = logging.getLogger(__name__)


@dataclass
class WriteStats:
    """Counters for the collector's own health."""

    written: int = 0
    retries: int = 0
    quarantined: int = 0


class ResilientWriter:
    """Keeps trying until the points are stored (or the collector stops).

    A non-retryable 4xx means some points are bad: the batch is split in halves until the bad
    points stand alone; those are quarantined (logged and counted), the rest are stored.
    """

    def __init__(self, writer: PointWriter, stop: threading.Event, *,
                 max_delay: float = 30.0, first_delay: float = 0.5,
                 wait: Callable[[float], bool] | None = None,
                 on_quarantine: Callable[[str, StorageError], None] | None = None) -> None:
        self.writer = writer
        self.stop = stop
        self.max_delay = max_delay
        self.first_delay = first_delay
        self.wait = wait or stop.wait  # returns True when stopping
        self.on_quarantine = on_quarantine
        self.stats = WriteStats()

    def write(self, lines: list[str]) -> bool:
        """True when every point was stored or quarantined; False if stopped first."""
        delay = self.first_delay
        failing_since_logged = False
        while True:
            try:
                self._write_isolating(lines)
                if failing_since_logged:
                    log.info("storage is back; %d points written", len(lines))
                return True
            except StorageError as exc:
                self.stats.retries += 1
                if exc.retry_after is not None:  # the server's wish: never earlier
                    pause = min(exc.retry_after, self.max_delay)
                else:
                    # Jitter so several collectors do not hammer a recovering InfluxDB in step.
                    pause = min(delay, self.max_delay) * random.uniform(0.8, 1.0)
                if not failing_since_logged:
                    log.error("storage write failed (%s); retrying, nothing is acked meanwhile",
                              exc)
                    failing_since_logged = True
                if self.wait(pause):
                    return False
                delay = min(delay * 2, self.max_delay)

    def _write_isolating(self, lines: list[str]) -> None:
        try:
            self.writer.write(lines)
            self.stats.written += len(lines)
        except StorageError as exc:
            if exc.retryable:
                raise
            if len(lines) == 1:
                self.stats.quarantined += 1
                log.error("storage refused a point, quarantined: %s (%s)", lines[0][:300], exc)
                if self.on_quarantine is not None:
                    self.on_quarantine(lines[0], exc)
                return
            half = len(lines) // 2
            self._write_isolating(lines[:half])
            self._write_isolating(lines[half:])
