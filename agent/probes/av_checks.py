"""How the av probe checks one classroom device: ICMP echo, TCP connect, PJLink, SNMP sysUpTime.

A checker returns the device's ``av`` fields (``online`` always among them) or raises
:class:`CheckError`; anything else it raises (OSError, ProbeError) also means offline.  PJLink
and SNMP libraries are imported inside their checker, so an agent without projectors or SNMP
devices never loads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from agent.probes.reach import icmp_echo, tcp_connect
from common.wire import FieldValue

if TYPE_CHECKING:
    from agent.probes.av import AvDevice

log = logging.getLogger(__name__)

SYS_UPTIME_OID: Final = "1.3.6.1.2.1.1.3.0"
ECHOES: Final = 3
ECHO_INTERVAL: Final = 0.2

Fields = dict[str, FieldValue]
Checker = Callable[["AvDevice", float], Fields]


class CheckError(Exception):
    """A check that learned the device's state is not fully known; ``online`` says whether the
    device answered at all (a projector refusing our password is online)."""

    def __init__(self, message: str, online: bool = False) -> None:
        super().__init__(message)
        self.online = online


def _echo_timeout(timeout: float) -> float:
    # The echoes are paced ECHO_INTERVAL apart: keep the whole check within ``timeout``.
    return max(0.2, timeout - (ECHOES - 1) * ECHO_INTERVAL)


def _echo_fields(received: int, rtt_ms: float | None) -> Fields:
    fields: Fields = {"online": received > 0}
    if rtt_ms is not None:
        fields["rtt_ms"] = round(rtt_ms, 3)
    return fields


def check_icmp(device: AvDevice, timeout: float) -> Fields:
    """Online when any of three echoes is answered."""
    stats = icmp_echo(device.host, ECHOES, _echo_timeout(timeout), ECHO_INTERVAL)
    return _echo_fields(stats.received, stats.rtt_avg_ms)


def check_tcp(device: AvDevice, timeout: float) -> Fields:
    """Online when any of three connects to the port succeeds (RDP 3389, SMB 445, ...)."""
    assert device.port is not None  # the settings validator guarantees it
    stats = tcp_connect(device.host, device.port, ECHOES, _echo_timeout(timeout), ECHO_INTERVAL)
    return _echo_fields(stats.received, stats.rtt_avg_ms)


def check_pjlink(device: AvDevice, timeout: float) -> Fields:
    """Power, lamp hours and error status over PJLink (TCP 4352)."""
    from agent.probes.pjlink import status_fields
    from agent.probes.pjlink_protocol import PjlinkAuthError, PjlinkError, query_projector

    try:
        status = query_projector(device.host, device.effective_port, device.secret("password"),
                                 timeout)
    except PjlinkAuthError as exc:
        # It greeted us: the projector is up, only its status is out of reach.
        raise CheckError(str(exc), online=True) from None
    except PjlinkError as exc:
        raise CheckError(str(exc)) from None
    # The same fields as the pjlink probe: one meaning of an av sample for a projector.
    return status_fields(status)


def check_snmp(device: AvDevice, timeout: float) -> Fields:
    """Online when the device answers a GET of sysUpTime.0; ``uptime_s`` from its value."""
    import asyncio

    ticks = asyncio.run(snmp_get_uptime(device.host, device.effective_port,
                                        device.secret("community") or "",
                                        device.snmp_version, timeout))
    return {"online": True, "uptime_s": ticks // 100}


async def snmp_get_uptime(host: str, port: int, community: str, version: str,
                          timeout: float) -> int:
    """sysUpTime.0 in hundredths of a second (pysnmp 7 asyncio); raises CheckError."""
    from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped, unused-ignore]
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    engine = SnmpEngine()
    try:
        try:
            # One retry: a lost UDP datagram is not an offline device.
            target = await UdpTransportTarget.create((host, port), timeout=timeout / 2,
                                                     retries=1)
        except Exception as exc:  # pysnmp wraps resolution failures in its own error types
            raise CheckError(f"{host}: {exc}") from None
        error, status, index, var_binds = await get_cmd(
            engine, CommunityData(community, mpModel=0 if version == "1" else 1), target,
            ContextData(), ObjectType(ObjectIdentity(SYS_UPTIME_OID)))
    finally:
        engine.close_dispatcher()
    if error:
        raise CheckError(f"{host}:{port}: {error}")
    if status:
        raise CheckError(f"{host}:{port}: {status.prettyPrint()} at {index}")
    value = var_binds[0][1]
    try:
        return int(value)
    except (TypeError, ValueError):  # noSuchObject / noSuchInstance
        raise CheckError(f"{host}:{port}: sysUpTime.0: {value.prettyPrint()}") from None


DEFAULT_CHECKERS: Final[dict[str, Checker]] = {
    "icmp": check_icmp, "tcp": check_tcp, "pjlink": check_pjlink, "snmp": check_snmp,
}
