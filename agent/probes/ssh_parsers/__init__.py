"""Per-vendor CLI commands of the ssh probe and their parsers (one module per command).

For each netmiko ``device_type``: the interface commands, most detailed first (their reports are
merged per interface, the first report that knows a field wins), the command giving the device's
uptime, and how names printed by the commands map to one canonical name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.probes.ssh_parsers import (
    cisco_ios_show_interfaces,
    cisco_ios_show_version,
    hp_comware_display_interface,
    hp_comware_display_interface_brief,
    hp_comware_display_version,
    huawei_display_interface,
    huawei_display_interface_brief,
    huawei_display_version,
    linux_ip_o_link,
    linux_proc_net_dev,
    linux_proc_uptime,
    linux_sys_class_net_speed,
    ruijie_show_interfaces,
    ruijie_show_interfaces_status,
)
from agent.probes.ssh_parsers.model import IfStatus, ParseError

InterfaceParser = Callable[[str], list[IfStatus]]
UptimeParser = Callable[[str], int]


@dataclass(frozen=True)
class Vendor:
    """What to run on one kind of device and how to read it."""

    interface_commands: tuple[tuple[str, InterfaceParser], ...]
    uptime_command: tuple[str, UptimeParser] | None
    canonical: Callable[[str], str] = lambda name: name


def _single_spaced(name: str) -> str:
    return " ".join(name.split())


VENDORS: dict[str, Vendor] = {
    "huawei": Vendor(
        ((huawei_display_interface.COMMAND, huawei_display_interface.parse),
         (huawei_display_interface_brief.COMMAND, huawei_display_interface_brief.parse)),
        (huawei_display_version.COMMAND, huawei_display_version.parse),
    ),
    "hp_comware": Vendor(
        ((hp_comware_display_interface.COMMAND, hp_comware_display_interface.parse),
         (hp_comware_display_interface_brief.COMMAND, hp_comware_display_interface_brief.parse)),
        (hp_comware_display_version.COMMAND, hp_comware_display_version.parse),
        hp_comware_display_interface_brief.full_name,
    ),
    "ruijie_os": Vendor(
        ((ruijie_show_interfaces.COMMAND, ruijie_show_interfaces.parse),
         (ruijie_show_interfaces_status.COMMAND, ruijie_show_interfaces_status.parse)),
        None,  # no recorded 'show version' to write a parser from
        _single_spaced,
    ),
    "cisco_ios": Vendor(
        ((cisco_ios_show_interfaces.COMMAND, cisco_ios_show_interfaces.parse),),
        (cisco_ios_show_version.COMMAND, cisco_ios_show_version.parse),
    ),
    "linux": Vendor(
        ((linux_ip_o_link.COMMAND, linux_ip_o_link.parse),
         (linux_proc_net_dev.COMMAND, linux_proc_net_dev.parse),
         (linux_sys_class_net_speed.COMMAND, linux_sys_class_net_speed.parse)),
        (linux_proc_uptime.COMMAND, linux_proc_uptime.parse),
    ),
}

__all__ = ["VENDORS", "IfStatus", "ParseError", "Vendor"]
