"""Metrics of a network node (city / district / province education network) from its own ports.

"广州市教育科研网的互联网出口带宽升级到40G,并实现与各区的万兆互联" and "萬兆主干" are targets of
the city's or province's network, not of a school: they are measured on the ports the node's
inventory entry names (``networks[].links``), as its SNMP/SSH agent reports them (netdev_if).
"""

from __future__ import annotations

from collections import defaultdict

from collector.inventory import Network
from collector.rules.state import SchoolState
from common.vocab import NetworkLinkRole

_ROLE: dict[str, NetworkLinkRole] = {"egress_mbps": "egress",
                                     "district_link_mbps": "district_link",
                                     "backbone_link_mbps": "backbone"}


def network_value(net: Network, state: SchoolState, metric: str, since_ms: int) -> float | None:
    """The node's figure in Mbit/s; None when none of the named ports reported in the window.

    egress_mbps: the sum of the egress ports (an aggregated 4 x 10G egress is 40G);
    district_link_mbps: per peer district the sum of its link ports, the slowest peer;
    backbone_link_mbps: the slowest backbone port. A port that is down counts 0.
    """
    role = _ROLE[metric]
    by_peer: dict[str, float] = defaultdict(float)
    for link in net.links:
        if link.role != role:
            continue
        seen = state.backbone.get((link.device, link.ifname))
        if seen is None or seen[0] < since_ms:
            continue
        key = (link.peer or link.ifname) if role == "district_link" else link.ifname
        by_peer[key] += seen[1]
    if not by_peer:
        return None
    if role == "egress":
        return sum(by_peer.values())
    return min(by_peer.values())
