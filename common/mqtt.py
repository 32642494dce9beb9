"""Building a paho-mqtt 2.x client (MQTT v5) from MqttSettings: TLS, credentials, session."""

from __future__ import annotations

import ssl
from typing import Any

from common.config import MqttSettings


def make_client(settings: MqttSettings, client_id: str) -> Any:
    """A paho Client configured for MQTT v5 with TLS and credentials as the settings say."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
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


def connect_async(client: Any, settings: MqttSettings, session_expiry_s: float | None,
                  receive_maximum: int | None = None) -> None:
    """Start connecting (and reconnecting) in paho's network thread.

    ``session_expiry_s`` None or 0 means a clean session that ends with the connection;
    otherwise clean_start is false and the broker keeps the session (subscriptions, queued
    QoS 1 messages) that long after the connection ends.
    """
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
    to send a non-zero value, and 0 is what the broker does anyway).
    """
    if not session_expiry_s:
        client.disconnect()
        return
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.disconnect(properties=props)
