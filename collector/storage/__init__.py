"""Storage writers: InfluxDB 1.x (/write) and 2.x/3.x or VictoriaMetrics (/api/v2/write)."""

from __future__ import annotations

from typing import Protocol


class StorageError(Exception):
    """A write that did not succeed; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Worth trying again later: no answer, 429 or 5xx. Other 4xx mean bad points."""
        return self.status is None or self.status == 429 or self.status >= 500


class PointWriter(Protocol):
    """Writes line-protocol points (ms precision); raises StorageError."""

    def write(self, lines: list[str]) -> None:
        """Store the points or raise."""
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
