"""``schoolmon agent discover``: find classroom devices on a subnet and propose an av inventory.

Three looks at the subnet: an ARP sweep (scapy, needs CAP_NET_RAW; every live IPv4 host and its
MAC), a PJLink Class 2 search (``%2SRCH`` broadcast to UDP 4352; projectors answer
``%2ACKN=<mac>`` to UDP 4352 of the sender) and TCP connects to RDP 3389 and SMB 445 of every
host found.  PJLink responders are projectors, hosts with 3389 or 445 open are PCs, the rest
"other".  The result is a YAML proposal of ``devices:`` for an av probe, to be completed
(names, classrooms) by the installer.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import re
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from agent.probes.reach import tcp_connect

log = logging.getLogger(__name__)

PJLINK_PORT: Final = 4352
SEARCH: Final = b"%2SRCH\r"
PC_PORTS: Final = (3389, 445)  # RDP, SMB: Windows classroom PCs
MAX_ADDRESSES: Final = 4096  # a /20: larger sweeps are a mistake on a school LAN
_ACKN: Final = re.compile(rb"^%2ACKN=([0-9A-Fa-f]{2}(?:[:-]?[0-9A-Fa-f]{2}){5})\s*$")


@dataclass(frozen=True)
class DiscoveredDevice:
    """One host found: address, MAC (when known), guessed type and why."""

    ip: str
    mac: str | None
    device_type: str  # projector, pc, other
    evidence: str  # pjlink, tcp/3389, tcp/445, arp


def normalize_mac(text: str) -> str:
    """'0011AABBCCDD', '00-11-aa-bb-cc-dd' -> '00:11:aa:bb:cc:dd'."""
    digits = re.sub(r"[^0-9A-Fa-f]", "", text).lower()
    if len(digits) != 12:
        raise ValueError(f"not a MAC address: {text!r}")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def parse_ackn(data: bytes) -> str | None:
    """The MAC of a ``%2ACKN=<mac>`` search answer, None for anything else."""
    match = _ACKN.match(data.replace(b"\x00", b""))
    return normalize_mac(match.group(1).decode("ascii")) if match else None


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    """An IPv4 network of at most MAX_ADDRESSES addresses; raises ValueError."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise ValueError(f"--subnet {subnet!r} is not a CIDR like 192.168.3.0/24") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError("--subnet must be IPv4 (ARP and PJLink search are IPv4 only)")
    if net.num_addresses > MAX_ADDRESSES:
        raise ValueError(f"--subnet {net} has {net.num_addresses} addresses; at most "
                         f"{MAX_ADDRESSES} (a /20) per run")
    return net


def arp_sweep(net: ipaddress.IPv4Network, timeout: float) -> dict[str, str]:
    """ip -> MAC of every host answering ARP (scapy; needs CAP_NET_RAW)."""
    # scapy costs ~130 MB: imported only for this one-shot command.
    from scapy.config import conf
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    iface = conf.route.route(str(next(net.hosts(), net.network_address)))[0]
    answered, _ = srp(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=str(net)), iface=iface,
                      timeout=timeout, verbose=False)
    return {reply.psrc: normalize_mac(reply.hwsrc) for _, reply in answered}


def pjlink_search(net: ipaddress.IPv4Network, timeout: float,
                  port: int = PJLINK_PORT) -> dict[str, str]:
    """ip -> MAC of every PJLink Class 2 device answering a search broadcast."""
    found: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            sock.bind(("", port))  # the spec sends answers to UDP 4352 of the controller
        except OSError as exc:
            log.warning("UDP %d is busy (%s): projectors that answer to port %d are missed",
                        port, exc.strerror, port)
            sock.bind(("", 0))
        sock.sendto(SEARCH, (str(net.broadcast_address), port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (ip, _) = sock.recvfrom(512)
            except TimeoutError:
                break
            mac = parse_ackn(data)
            if mac is not None and ipaddress.ip_address(ip) in net:
                found[ip] = mac
    return found


def open_pc_port(ip: str, timeout: float) -> int | None:
    """The first of RDP 3389 / SMB 445 accepting a connection, else None."""
    for port in PC_PORTS:
        if tcp_connect(ip, port, 1, timeout).up:
            return port
    return None


Sweep = Callable[[ipaddress.IPv4Network, float], dict[str, str]]
PortCheck = Callable[[str, float], int | None]


def discover_devices(subnet: str, timeout: float = 3.0, *, arp: Sweep = arp_sweep,
                     search: Sweep = pjlink_search,
                     pc_port: PortCheck = open_pc_port) -> list[DiscoveredDevice]:
    """Every host of ``subnet`` found by ARP or PJLink search, typed, sorted by address.
    Raises ValueError for a bad subnet, PermissionError when ARP needs privileges."""
    net = parse_subnet(subnet)
    with ThreadPoolExecutor(max_workers=2) as pool:
        arp_job = pool.submit(arp, net, timeout)
        search_job = pool.submit(search, net, timeout)
        projectors = search_job.result()
        try:
            macs = arp_job.result()
        except PermissionError:
            if not projectors:
                raise
            log.warning("ARP sweep needs CAP_NET_RAW (run as root): only PJLink devices found")
            macs = {}
    others = sorted(set(macs) - set(projectors), key=ipaddress.ip_address)
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(others)))) as pool:
        ports = dict(zip(others, pool.map(lambda ip: pc_port(ip, min(timeout, 1.0)), others),
                         strict=True))
    found = [DiscoveredDevice(ip, mac, "projector", "pjlink") for ip, mac in projectors.items()]
    for ip in others:
        port = ports[ip]
        found.append(DiscoveredDevice(ip, macs[ip], "pc" if port else "other",
                                      f"tcp/{port}" if port else "arp"))
    return sorted(found, key=lambda d: ipaddress.ip_address(d.ip))


def proposal(devices: list[DiscoveredDevice], subnet: str) -> str:
    """The YAML inventory proposal: av probe ``devices:`` entries plus a header comment."""
    import yaml

    entries = []
    for d in devices:
        entry: dict[str, object] = {"name": f"{d.device_type}-{d.ip.replace('.', '-')}",
                                    "classroom": "TODO", "device_type": d.device_type,
                                    "host": d.ip}
        if d.mac:
            entry["mac"] = d.mac
        if d.device_type == "projector":
            entry["method"] = "pjlink"  # add password_env if the projector has a password
        elif d.device_type == "pc":
            entry.update(method="tcp", port=int(d.evidence.split("/")[1]))
        else:
            entry["method"] = "icmp"
        entries.append(entry)
    head = (f"# schoolmon agent discover --subnet {subnet}: {len(devices)} device(s).\n"
            "# Proposal: set name and classroom of each, then list them under an av probe's\n"
            "# devices: (a projector with a PJLink password also needs password_env).\n")
    return head + yaml.safe_dump({"devices": entries}, sort_keys=False, allow_unicode=True)


def cmd_agent_discover(args: argparse.Namespace) -> int:
    """CLI: ``schoolmon agent discover --subnet CIDR [--timeout S]``."""
    try:
        devices = discover_devices(args.subnet, args.timeout)
    except ValueError as exc:
        print(f"schoolmon: {exc}", file=sys.stderr)
        return 2
    except PermissionError:
        print("schoolmon: the ARP sweep needs CAP_NET_RAW: run as root (or setcap "
              "cap_net_raw+ep on the Python executable)", file=sys.stderr)
        return 1
    sys.stdout.write(proposal(devices, args.subnet))
    return 0
