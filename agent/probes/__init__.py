"""Probes: one module per source.  ``ProbeSettings`` is the union the YAML ``type:`` selects."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agent.probes.av import AvSettings
from agent.probes.base import Probe
from agent.probes.host import HostSettings
from agent.probes.iface import IfaceSettings
from agent.probes.pjlink import PjlinkSettings
from agent.probes.reach import ReachSettings
from agent.probes.snmp import SnmpSettings
from agent.probes.speedtest import SpeedtestSettings
from agent.probes.ssh import SshSettings
from agent.probes.values import GuardedProbe
from agent.probes.wifi import WifiSettings

# Every probe type the YAML ``type:`` can select.  Importing these modules loads no heavy
# library: pysnmp, netmiko and scapy are imported inside ``build()`` or the code path using them.
AnyProbeSettings = (IfaceSettings | HostSettings | ReachSettings | SnmpSettings | SshSettings
                    | PjlinkSettings | AvSettings | WifiSettings | SpeedtestSettings)
ProbeSettings = Annotated[AnyProbeSettings, Field(discriminator="type")]


def build_probe(settings: AnyProbeSettings) -> Probe:
    """A probe wired to its production data sources, a bad value costing that value only (a
    value the wire refuses would otherwise make the collector refuse the whole batch)."""
    return GuardedProbe(settings.build(), settings.instance_name(settings.type))


__all__ = ["Probe", "ProbeSettings", "build_probe"]
