"""Storage writers: InfluxDB 1.x (/write) and 2.x/3.x or VictoriaMetrics (/api/v2/write)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

# What the collector does about a failed write:
#   retry       not stored: keep the batch, ack nothing, try again with backoff
#   quarantine  these points can never be accepted: isolate them, dead-letter them, ack
#   split       the request is too big (413): send it in halves
Action = Literal["retry", "quarantine", "split"]

# Writes one collector may have in flight at once (write.writers, and the rules' own points
# beside them); every PointWriter is safe to call from that many threads.
MAX_CONCURRENT_WRITES = 8


class StorageError(Exception):
    """A write that did not succeed, with what it means.

    ``status`` is the HTTP status (None: no answer); ``cause`` a stable name for metrics and
    alerts (e.g. ``database_missing``, ``auth``, ``field_type_conflict``); ``action`` what to do.
    Without an explicit cause, the status and message are classified as a server body would be.
    """

    def __init__(self, message: str, status: int | None = None,
                 retry_after: float | None = None, *, cause: str | None = None,
                 action: Action | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        if cause is None or action is None:
            from collector.storage.refusal import classify

            found_cause, found_action = classify(status, message)
            cause, action = cause or found_cause, action or found_action
        self.cause: str = cause
        self.action: Action = action

    @property
    def retryable(self) -> bool:
        """Not stored, worth trying again: everything but refused points and too-big requests."""
        return self.action == "retry"


@dataclass(frozen=True)
class StorageHealth:
    """The collector's view of its storage, for the stats, the log and the alert."""

    failing_since_ms: int | None = None  # wall clock of the first failure of this outage
    cause: str = ""  # StorageError.cause of the latest failure
    message: str = ""  # the one line the log shows: cause and fix
    failures_total: int = 0
    quarantined_total: int = 0

    @property
    def failing(self) -> bool:
        """Writes are not being stored now."""
        return self.failing_since_ms is not None


class PointWriter(Protocol):  # implementations are thread-safe (MAX_CONCURRENT_WRITES)
    """Writes line-protocol points (ms precision); raises StorageError."""

    def write(self, lines: list[str]) -> None:
        """Store the points (durably: acked points must survive a crash of the server) or raise."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the delta-seconds form; dates are ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
