"""The words agents, collector and configs share, declared once: roles and device types.

Each is a ``Literal`` so pydantic refuses anything else in a config and mypy in code; the probes
that send them (iface, reach, av), the inventory, the rules and the alerts import them from here.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# What a network interface of an agent's host is for (iface.role tag).
InterfaceRole = Literal["wan", "lan", "wlan", "other"]
WAN: Final = "wan"
WLAN: Final = "wlan"

# What a reach target is (reach.target_role tag): the school's gateway, a DNS server, the
# district hub (education network), a server on the internet, a classroom device.
TargetRole = Literal["gateway", "dns", "district", "internet", "device"]
# The network path a target proves: the internet itself ("互联网全覆盖" needs this one), or
# only the education network (the district hub answers, the internet may not).
INTERNET_ROLE: Final = "internet"
EDU_ROLE: Final = "district"
# Targets beyond the school: one answering means the school's uplink carries traffic.
UPLINK_ROLES: Final = frozenset({INTERNET_ROLE, EDU_ROLE})

# What a port of a network node (city / district / province education network) carries: its
# internet egress, its link to another district, a backbone link (inventory networks[].links).
NetworkLinkRole = Literal["egress", "district_link", "backbone"]

# What an agent is in the inventory.
AgentRole = Literal["gateway", "classroom_pc", "server"]

# Classroom devices (av.device_type tag, inventory devices[].type, rules.multimedia_types).
# One list for all three: a "display" (monitor, TV) and a "speaker" are both classroom devices an
# agent can check and an inventory can list; which count as multimedia is a setting.
DeviceType = Literal["projector", "panel", "display", "pc", "speaker", "other"]
MULTIMEDIA_TYPES: Final[tuple[DeviceType, ...]] = ("projector", "panel")

INTERFACE_ROLES: Final = frozenset(get_args(InterfaceRole))
TARGET_ROLES: Final = frozenset(get_args(TargetRole))
AGENT_ROLES: Final = frozenset(get_args(AgentRole))
NETWORK_LINK_ROLES: Final = frozenset(get_args(NetworkLinkRole))
DEVICE_TYPES: Final = frozenset(get_args(DeviceType))

# A speedtest sample's ``method`` field when a teacher ran it in a classroom browser
# (agent/speedtest/classroom.py); the rules keep such tests apart from the school's access.
BROWSER_METHOD: Final = "browser"
