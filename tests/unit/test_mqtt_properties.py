"""paho's v5 Properties with shared tables (common/mqtt.py) behave as paho's own."""

from __future__ import annotations

from typing import Any

import pytest
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.mqtt import share_property_tables


def test_shared_tables_pack_unpack_and_check_as_before() -> None:
    """Round trip, the empty check and paho's own validation of names are unchanged."""
    assert share_property_tables()
    assert share_property_tables()  # idempotent
    connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    assert connect.isEmpty()  # type: ignore[no-untyped-call]
    connect.SessionExpiryInterval = 3600
    connect.ReceiveMaximum = 1000
    assert not connect.isEmpty()  # type: ignore[no-untyped-call]
    back: Any = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    back.unpack(connect.pack())  # type: ignore[no-untyped-call]
    assert (back.SessionExpiryInterval, back.ReceiveMaximum) == (3600, 1000)
    publish = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    assert publish.isEmpty()  # type: ignore[no-untyped-call]  # a new one shares no values
    with pytest.raises(MQTTException):  # a CONNECT-only property on a PUBLISH
        publish.SessionExpiryInterval = 5
    with pytest.raises(MQTTException):
        publish.NoSuchProperty = 1
