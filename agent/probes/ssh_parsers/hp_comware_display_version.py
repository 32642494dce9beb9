"""H3C/HPE Comware ``display version``: the device's uptime (its first ``uptime is ...`` line)."""

from __future__ import annotations

from typing import Final

from agent.probes.ssh_parsers.uptime import uptime_seconds

COMMAND: Final = "display version"


def parse(text: str) -> int:
    """Uptime in seconds."""
    return uptime_seconds(COMMAND, text)
