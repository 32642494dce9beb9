"""Probes: one module per source.  ``ProbeSettings`` is the union the YAML ``type:`` selects."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agent.probes.base import Probe
from agent.probes.host import HostSettings
from agent.probes.iface import IfaceSettings
from agent.probes.speedtest import SpeedtestSettings

AnyProbeSettings = IfaceSettings | HostSettings | SpeedtestSettings
ProbeSettings = Annotated[AnyProbeSettings, Field(discriminator="type")]


def build_probe(settings: AnyProbeSettings) -> Probe:
    """A probe wired to its production data sources."""
    return settings.build()


__all__ = ["Probe", "ProbeSettings", "build_probe"]
