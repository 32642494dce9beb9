"""The SNMP probe's production transport: pysnmp 7 asyncio (get_cmd, bulk_walk_cmd).

Imported only by ``SnmpSettings.build()``: an agent without SNMP targets never loads pysnmp.
One SnmpEngine serves one poll (one event loop); it is closed when the poll ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from pysnmp.hlapi.v3arch import asyncio as hl  # type: ignore[import-untyped, unused-ignore]
from pysnmp.proto import errind  # type: ignore[import-untyped, unused-ignore]

from agent.probes.snmp_parsers import SnmpError, Value, VarBind

if TYPE_CHECKING:
    from agent.probes.snmp import SnmpSession, SnmpSettings, SnmpTargetSettings

_AUTH = {
    "md5": hl.usmHMACMD5AuthProtocol,
    "sha": hl.usmHMACSHAAuthProtocol,
    "sha224": hl.usmHMAC128SHA224AuthProtocol,
    "sha256": hl.usmHMAC192SHA256AuthProtocol,
    "sha384": hl.usmHMAC256SHA384AuthProtocol,
    "sha512": hl.usmHMAC384SHA512AuthProtocol,
}
_PRIV = {
    "des": hl.usmDESPrivProtocol,
    "3des": hl.usm3DESEDEPrivProtocol,
    "aes": hl.usmAesCfb128Protocol,
    # Net-SNMP's AES-192/256 key extension (Blumenthal); the "c" variants are Cisco's (Reeder).
    "aes192": hl.usmAesBlumenthalCfb192Protocol,
    "aes256": hl.usmAesBlumenthalCfb256Protocol,
    "aes192c": hl.usmAesCfb192Protocol,
    "aes256c": hl.usmAesCfb256Protocol,
}
MAX_WALK_VARBINDS = 100_000  # a device that never ends a column is broken, not big


def pysnmp_sessions(settings: SnmpSettings) -> Callable[
        [], AbstractAsyncContextManager[SnmpSession]]:
    """The session factory the probe uses in production."""

    @asynccontextmanager
    async def open_session() -> AsyncIterator[SnmpSession]:
        session = PysnmpSession(settings)
        try:
            yield session
        finally:
            session.close()

    return open_session


class PysnmpSession:
    """GET and GETBULK walks; errors become SnmpError with a clear cause.

    Targets share SnmpEngines, except that one engine never holds one v3 user name with two
    different keys: its user table is keyed by user name, so the second would silently
    replace the first (two devices with user "mon" but different keys is common).
    """

    def __init__(self, settings: SnmpSettings) -> None:
        self.settings = settings
        self._engines: list[tuple[Any, dict[str, tuple[str | None, ...]]]] = []
        self._targets: dict[str, tuple[Any, Any, Any, Any]] = {}

    def close(self) -> None:
        """Close the engines' sockets."""
        for engine, _ in self._engines:
            engine.close_dispatcher()

    def _engine_for(self, target: SnmpTargetSettings) -> Any:
        user = target.user or ""
        creds = (target.auth_protocol, target.secret("auth_key"), target.priv_protocol,
                 target.secret("priv_key"))
        for engine, users in self._engines:
            if target.version == "2c" or users.setdefault(user, creds) == creds:
                return engine
        engine = hl.SnmpEngine()
        self._engines.append((engine, {user: creds} if target.version == "3" else {}))
        return engine

    async def _endpoint(self, target: SnmpTargetSettings) -> tuple[Any, Any, Any, Any]:
        if target.name not in self._targets:
            timeout = self.settings.request_timeout(target)
            retries = self.settings.request_retries(target)
            kind = hl.Udp6TransportTarget if ":" in target.host else hl.UdpTransportTarget
            try:
                transport = await kind.create((target.host, target.port), timeout=timeout,
                                              retries=retries)
            except Exception as exc:  # pysnmp wraps resolver errors in PySnmpError
                raise SnmpError(f"cannot resolve {target.host}: {exc}") from None
            self._targets[target.name] = (self._engine_for(target), _auth(target), transport,
                                          hl.ContextData(contextName=target.context))
        return self._targets[target.name]

    async def get(self, target: SnmpTargetSettings, oids: Sequence[str]) -> list[VarBind]:
        """GET scalars."""
        engine, auth, transport, context = await self._endpoint(target)
        ind, status, index, varbinds = await hl.get_cmd(
            engine, auth, transport, context,
            *(hl.ObjectType(hl.ObjectIdentity(oid)) for oid in oids), lookupMib=False)
        self._check(target, ind, status, index)
        return [(str(name), to_python(value)) for name, value in varbinds]

    async def walk(self, target: SnmpTargetSettings, column: str) -> list[VarBind]:
        """GETBULK-walk one column, stopping at its end."""
        engine, auth, transport, context = await self._endpoint(target)
        out: list[VarBind] = []
        async for ind, status, index, varbinds in hl.bulk_walk_cmd(
                engine, auth, transport, context, 0, self.settings.max_repetitions,
                hl.ObjectType(hl.ObjectIdentity(column)), lexicographicMode=False,
                lookupMib=False):
            self._check(target, ind, status, index)
            out.extend((str(name), to_python(value)) for name, value in varbinds)
            if len(out) > MAX_WALK_VARBINDS:
                raise SnmpError(f"walk of {column} did not end after {MAX_WALK_VARBINDS} values")
        return out

    def _check(self, target: SnmpTargetSettings, ind: object, status: object,
               index: object) -> None:
        if ind:
            raise SnmpError(describe(ind, target, self.settings.request_timeout(target),
                                     self.settings.request_retries(target)))
        if status and int(status):  # type: ignore[call-overload]
            name = getattr(status, "prettyPrint", lambda: str(status))()
            raise SnmpError(f"device answered error-status {name} (index {index})")


def _auth(target: SnmpTargetSettings) -> Any:
    if target.version == "2c":
        return hl.CommunityData(target.secret("community"), mpModel=1)
    auth_key, priv_key = target.secret("auth_key"), target.secret("priv_key")
    return hl.UsmUserData(
        target.user, authKey=auth_key, privKey=priv_key,
        authProtocol=_AUTH[target.auth_protocol] if auth_key else hl.usmNoAuthProtocol,
        privProtocol=_PRIV[target.priv_protocol] if priv_key else hl.usmNoPrivProtocol)


def describe(ind: object, target: SnmpTargetSettings, timeout: float, retries: int) -> str:
    """A one-line cause a network admin can act on (never a secret)."""
    if isinstance(ind, errind.RequestTimedOut):
        hint = {"community": "wrong community?", "authPriv": "wrong priv_key or context?",
                }.get(target.security_level, "wrong context?")
        return (f"no answer in {timeout:g}s x {retries + 1} tries "
                f"(device down, SNMP off, filtered, or {hint})")
    if isinstance(ind, errind.WrongDigest | errind.AuthenticationFailure
                  | errind.AuthenticationError):
        return f"SNMPv3 authentication failed for user {target.user} (wrong auth_key?)"
    if isinstance(ind, errind.DecryptionError):
        return f"SNMPv3 decryption failed for user {target.user} (wrong priv_key?)"
    if isinstance(ind, errind.UnknownUserName | errind.UnknownSecurityName):
        return f"SNMPv3 user {target.user} unknown to the device"
    if isinstance(ind, errind.UnsupportedSecurityLevel):
        return (f"SNMPv3 security level {target.security_level} not allowed for user "
                f"{target.user}")
    return f"SNMP error: {ind}"


def to_python(value: Any) -> Value:
    """A pysnmp value as plain Python (see snmp_parsers.Value)."""
    from pyasn1.type import univ  # type: ignore[import-untyped, unused-ignore]

    if isinstance(value, univ.Integer):  # Integer32, Counter32/64, Gauge32, TimeTicks, ...
        return int(value)
    if isinstance(value, univ.OctetString):  # also IpAddress, Opaque
        return bytes(value)
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    return None  # Null, noSuchObject, noSuchInstance, endOfMibView
