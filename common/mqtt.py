"""A paho-mqtt 2.x client (MQTT v5 or 3.1.1) from MqttSettings: TLS, credentials, session."""

from __future__ import annotations

import logging
import os
import signal
import ssl
from typing import Any

from common.config import MqttSettings

log = logging.getLogger(__name__)

# CONNACK "Unsupported Protocol Version": 0x84 in MQTT v5, return code 1 in 3.1.1 (paho gives
# both as ReasonCode 132).
UNSUPPORTED_PROTOCOL = 132
PROTOCOL_NAMES = {"v5": "MQTT v5", "v311": "MQTT 3.1.1"}


def share_property_tables() -> bool:
    """Make paho's MQTT v5 ``Properties`` cheap to create; True when it applies.

    paho-mqtt 2.2 builds a ``Properties`` for every PUBLISH and PUBACK it receives, and each
    one builds its own tables of the 27 property names and types (dicts, tuples, 27 list
    searches): measured, with the empty-check that walks those names, a quarter of a bare v5
    subscriber's time.  The tables are never written after construction, so every instance
    can share one copy.  Only for the paho layout this was measured on: anything else keeps
    paho's own code.
    """
    from paho.mqtt import properties as props
    from paho.mqtt.packettypes import PacketTypes

    cls = props.Properties
    if getattr(cls, "_schoolmon_shared", False):
        return True
    sample = cls(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    base = vars(sample)
    if set(base) != {"packetType", "types", "names", "properties"}:
        return False
    types, names, table = base["types"], base["names"], base["properties"]

    def init(self: Any, packet_type: int) -> None:
        d = self.__dict__
        d["packetType"], d["types"], d["names"], d["properties"] = (
            packet_type, types, names, table)

    def is_empty(self: Any) -> bool:  # no property set: nothing beyond the four tables
        return len(self.__dict__) == 4

    cls.__init__ = init  # type: ignore[method-assign]
    cls.isEmpty = is_empty  # type: ignore[method-assign]
    cls._schoolmon_shared = True  # type: ignore[attr-defined]
    return True


def make_client(settings: MqttSettings, client_id: str) -> Any:
    """A paho Client for the protocol, TLS and credentials the settings say.

    With MQTT 3.1.1 the session is chosen here (paho takes clean_session at construction):
    kept (clean_session false) when ``settings.session_expiry`` is not 0.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    share_property_tables()
    if settings.protocol == "v311":
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=MQTTProtocolVersion.MQTTv311,
                             clean_session=not settings.session_expiry)
    else:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=MQTTProtocolVersion.MQTTv5)
    if settings.username:
        client.username_pw_set(settings.username, settings.secret("password"))
    if settings.tls is not None:
        tls = settings.tls
        client.tls_set(
            ca_certs=tls.ca_file,
            certfile=tls.cert_file,
            keyfile=tls.key_file,
            cert_reqs=ssl.CERT_NONE if tls.insecure_skip_verify else ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        if tls.insecure_skip_verify:
            client.tls_insecure_set(True)
    return client


def protocol_refusal(settings: MqttSettings, reason: Any) -> str | None:
    """The one line to print when the broker refused the protocol version, else None.

    ``reason``: paho's ReasonCode or the code as an int.
    """
    code = reason if isinstance(reason, int) else getattr(reason, "value", None)
    if code != UNSUPPORTED_PROTOCOL:
        return None
    other = "v311" if settings.protocol == "v5" else "v5"
    return (f"broker {settings.host}:{settings.port} does not speak "
            f"{PROTOCOL_NAMES[settings.protocol]} (mqtt.protocol: {settings.protocol}); "
            f"set mqtt.protocol: {other} if it speaks {PROTOCOL_NAMES[other]}")


def _stop_on_protocol_refusal(client: Any, settings: MqttSettings) -> None:
    """Wrap the client's on_connect: a refused protocol version ends the process, once.

    Reconnecting would be refused the same way for ever, so the error line is logged once,
    the client stops reconnecting and the process gets SIGTERM (its ordinary, clean stop).
    """
    inner = client.on_connect

    def on_connect(c: Any, userdata: object, flags: object, reason: Any, props: object) -> None:
        line = protocol_refusal(settings, reason)
        if line is None:
            if inner is not None:
                inner(c, userdata, flags, reason, props)
            return
        log.error("%s", line)
        c.on_connect = None
        c.disconnect()
        os.kill(os.getpid(), signal.SIGTERM)

    client.on_connect = on_connect


def connect_async(client: Any, settings: MqttSettings, session_expiry_s: float | None,
                  receive_maximum: int | None = None) -> None:
    """Start connecting (and reconnecting) in paho's network thread.

    ``session_expiry_s`` None or 0 means a clean session that ends with the connection;
    otherwise clean_start is false and the broker keeps the session (subscriptions, queued
    QoS 1 messages) that long after the connection ends.  With MQTT 3.1.1 there is no expiry
    and no receive maximum: the session was chosen by make_client, and the broker's own
    setting bounds the messages in flight (NATS: mqtt.max_ack_pending).
    """
    _stop_on_protocol_refusal(client, settings)
    if settings.protocol == "v311":
        client.connect_async(settings.host, settings.port, keepalive=int(settings.keepalive))
        client.loop_start()
        return
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    persistent = bool(session_expiry_s)
    if persistent:
        props.SessionExpiryInterval = int(session_expiry_s or 0)
    if receive_maximum is not None:
        # How many un-acked QoS 1 messages the broker may have in flight to us.
        props.ReceiveMaximum = receive_maximum
    client.connect_async(
        settings.host,
        settings.port,
        keepalive=int(settings.keepalive),
        clean_start=not persistent,
        properties=props,
    )
    client.loop_start()


def disconnect_ending_session(client: Any, session_expiry_s: float | None) -> None:
    """Disconnect and tell the broker to end the session now, whatever the CONNECT said.

    MQTT v5 lets DISCONNECT carry a Session Expiry Interval; 0 drops the session, its
    subscriptions and its queue at once (it may only be sent when the CONNECT asked for a
    session that outlives the connection: for a clean session it would be a protocol error
    to send a non-zero value, and 0 is what the broker does anyway).  MQTT 3.1.1 has no such
    property: a kept session (clean_session false) stays with the broker.
    """
    if not session_expiry_s or client.protocol != 5:
        client.disconnect()
        return
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.disconnect(properties=props)
