"""The remembered sample checks (common/wire.py) and line heads (lineprotocol) change nothing.

A tag set or field-name set that passed once is not checked again, so what varies (values,
types, ranges) must still be checked every time, and what never passed is never remembered.
"""

from __future__ import annotations

import orjson
import pytest

from collector.storage.lineprotocol import sample_line
from common.wire import AgentIdentity, Sample, WireError, decode_envelope

WHO = AgentIdentity("d1", "s1", "a1")
TS = 1_763_890_000_000


def envelope(samples: list[object]) -> bytes:
    """An envelope around raw sample objects (bad ones included)."""
    return orjson.dumps({"v": 1, "district": "d1", "school": "s1", "agent": "a1", "seq": 1,
                         "sent_ms": TS, "samples": samples})


def iface(**fields: object) -> dict[str, object]:
    """A raw iface sample with the usual tags."""
    return {"kind": "iface", "ts_ms": TS, "tags": {"iface": "eth0", "role": "wan"},
            "fields": fields}


def test_values_are_checked_every_time_after_the_shape_passed() -> None:
    """Same tags and field names as a good sample: a bad value is still refused."""
    decode_envelope(envelope([iface(rx_bps=1.5, up=True)]))
    decode_envelope(envelope([iface(rx_bps=2.5, up=False)]))  # remembered shape, new values
    for bad, cause in ((iface(rx_bps=-1.0, up=True), "out_of_range"),
                       (iface(rx_bps="fast", up=True), "bad_value"),
                       (iface(rx_bps=1.0, up=1), "bad_value")):
        with pytest.raises(WireError) as err:
            decode_envelope(envelope([bad]))
        assert err.value.cause == cause


def test_a_refused_shape_is_never_remembered() -> None:
    """A bad tag value or field name is refused on every message, hashable or not."""
    for _ in range(2):
        for tags in ({"iface": "eth0\\x", "role": "wan"}, {"iface": ["eth0"]},
                     {"iface": {"a": 1}}, {"district": "other"}):
            with pytest.raises(WireError) as err:
                decode_envelope(envelope([{"kind": "iface", "ts_ms": TS, "tags": tags,
                                           "fields": {"rx_bps": 1.0}}]))
            assert err.value.cause == "bad_tag"
        with pytest.raises(WireError) as err:
            decode_envelope(envelope([iface(Bad=1.0)]))
        assert err.value.cause == "bad_field"


def test_line_head_is_per_kind_and_tags() -> None:
    """Two kinds with the same tags, and tags in another order, get their own heads."""
    tags = {"iface": "eth 0", "role": "wan"}
    assert sample_line(Sample("iface", TS, tags, {"up": True}), WHO).startswith(
        r"iface,agent=a1,district=d1,iface=eth\ 0,role=wan,school=s1 ")
    assert sample_line(Sample("host", TS, {}, {"cpu_pct": 1}), WHO) == (
        f"host,agent=a1,district=d1,school=s1 cpu_pct=1.0 {TS}")
    assert sample_line(Sample("iface", TS, {"role": "lan"}, {"up": False}), WHO).startswith(
        "iface,agent=a1,district=d1,role=lan,school=s1 ")
