"""What every probe is: a settings model and ``collect() -> list[Sample]``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Final, Protocol

from common.config import Duration, DurationOrZero, Strict
from common.wire import TAG_FORBIDDEN, Sample

# What a tag value may not hold is common/wire.py's (a tag with one of these makes the collector
# refuse the whole batch).  Device names arrive from devices: every probe cleans them with
# TAG_FORBIDDEN_RE, and names from settings are checked with TAG_PATTERN.
TAG_FORBIDDEN_RE: Final = re.compile(f"[{TAG_FORBIDDEN}]")

WallClockMs = Callable[[], int]
Monotonic = Callable[[], float]


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, the timestamp of every sample."""
    return time.time_ns() // 1_000_000


class ProbeSettingsBase(Strict):
    """Keys every probe accepts."""

    name: str | None = None  # defaults to the type; needed when one type appears twice
    interval: Duration = 60.0
    timeout: Duration | None = None  # default: the interval
    jitter: DurationOrZero | None = None  # default: 10 % of the interval, to spread load
    school_hours_only: bool = False

    def instance_name(self, type_name: str) -> str:
        """The name logs and errors use for this probe."""
        return self.name or type_name

    def run_timeout(self) -> float:
        """How long one whole run may take before the scheduler logs it as overdue.

        Probes whose ``timeout`` means one request to one device override this.
        """
        return self.timeout or self.interval

    def build(self) -> Probe:
        """The probe wired to its production transport (heavy imports happen here, not at
        module load, so an agent that does not use a library never loads it)."""
        raise NotImplementedError(type(self).__name__)


class Probe(Protocol):
    """A source of samples; no I/O before the first ``collect``.

    A probe may also offer ``collect_now()``, used by ``agent run --once`` when its ``collect``
    follows a plan of its own (the speed test).
    """

    def collect(self) -> list[Sample]:
        """Measure now and return the samples (may be empty); raise on failure."""
        ...


class ProbeError(Exception):
    """A probe failure worth one clear log line (the target is named in the message)."""
