"""The speed test's budget state on disk: today's bytes and the back-off, across restarts.

A small JSON file, written whole to a temporary file and renamed (a crash leaves the old or the
new state, never half of one), readable by the agent's user only (0600).  A file that cannot
be read is logged and taken as empty: a broken state file must not stop the measurements.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BudgetState:
    """What the day's tests have cost and when the next may run after failures."""

    day: str = ""  # ISO date in the probe's time zone
    bytes_used: int = 0
    failures: int = 0  # consecutive failed tests
    retry_at: float = 0.0  # wall-clock seconds: no test before (back-off)


def load_state(path: str | None) -> BudgetState:
    """The saved state; an empty one when there is none or it cannot be read."""
    if path is None:
        return BudgetState()
    try:
        raw = json.loads(Path(path).read_text())
        state = BudgetState(str(raw["day"]), int(raw["bytes_used"]), int(raw["failures"]),
                            float(raw["retry_at"]))
    except FileNotFoundError:
        return BudgetState()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("speed test state %s unreadable (%s): starting the day's count at 0",
                    path, exc)
        return BudgetState()
    if state.bytes_used < 0 or state.failures < 0:
        return BudgetState()
    return state


def save_state(path: str | None, state: BudgetState) -> None:
    """Write ``state`` atomically with mode 0600; a failure is logged, not raised."""
    if path is None:
        return
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(state), out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)  # an older file may have been created with another mode
        os.replace(tmp, target)
    except OSError as exc:
        log.warning("speed test state %s not saved: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
