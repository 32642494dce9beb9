"""A bad value costs one value (agent/probes/values.py): the wire's rules applied per field,
counted per cause and logged once, never the batch of every device."""

from __future__ import annotations

import logging
import math

import pytest

from agent.probes import build_probe
from agent.probes.base import TAG_FORBIDDEN_RE
from agent.probes.host import HostSettings
from agent.probes.values import GuardedProbe, ValueGuard
from common.wire import Sample, WireError, check_samples

TS = 1_800_000_000_000


def netdev_if(device: str, **fields: int | float | bool | str) -> Sample:
    """One interface sample of ``device``."""
    return Sample("netdev_if", TS, {"device": device, "ifname": "GE0/0/1", "source": "snmp"},
                  dict(fields))


def test_bad_values_are_dropped_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    """Counter64 2**64-1, a negative speed and NaN are dropped from their samples; the good
    fields and the other device's sample arrive; causes are counted and logged once each."""
    guard = ValueGuard("snmp")
    samples = [
        netdev_if("evil", up=True, in_errors=2**64 - 1, speed_mbps=-5.0, out_errors=3),
        netdev_if("evil", up=True, in_bps=math.nan),
        netdev_if("evil", in_errors=2**64 - 1),  # nothing left: dropped
        netdev_if("good", up=True, in_errors=0, speed_mbps=1000.0),
    ]
    with caplog.at_level(logging.WARNING):
        clean = guard.clean(samples)
        guard.clean(samples)  # the same causes again: counted, not logged again
    check_samples(clean)
    assert [s.fields for s in clean] == [{"up": True, "out_errors": 3}, {"up": True},
                                         {"up": True, "in_errors": 0, "speed_mbps": 1000.0}]
    assert clean[-1] is samples[-1]  # a good sample passes untouched
    causes = dict(guard.dropped)
    assert causes["netdev_if.in_errors: bad_value: integer out of int64 range"] == 4
    assert sum(causes.values()) == 8 and len(causes) == 3
    assert len([r for r in caplog.records if "dropped" in r.message]) == 3
    assert "device=evil" in caplog.text


def test_a_sample_whose_tags_the_wire_refuses_costs_that_sample() -> None:
    """A tag the wire refuses (a C1 control character) drops its sample only."""
    guard = ValueGuard("ssh")
    bad = Sample("netdev", TS, {"device": "sw\x85", "source": "ssh"}, {"up": True})
    good = Sample("netdev", TS, {"device": "sw", "source": "ssh"}, {"up": True})
    assert guard.clean([bad, good]) == [good]
    assert sum(guard.dropped.values()) == 1


class Planned:
    """A probe with a plan of its own (like the speed test) returning one absurd value."""

    def __init__(self) -> None:
        self.runs = 0

    def collect(self) -> list[Sample]:
        """A reach sample with a negative round trip."""
        self.runs += 1
        return [Sample("reach", TS, {"target": "gw"}, {"up": True, "rtt_ms": -3.0})]

    def collect_now(self) -> list[Sample]:
        """The same, at once."""
        return self.collect()


class Plain:
    """A probe without collect_now."""

    def collect(self) -> list[Sample]:
        """Nothing."""
        return []


def test_every_built_probe_is_guarded() -> None:
    """build_probe wraps every probe: collect and collect_now lose the bad value, the probe's
    own attributes stay reachable, and a probe without collect_now still has none."""
    guarded = GuardedProbe(Planned(), "reach")
    assert [s.fields for s in guarded.collect()] == [{"up": True}]
    assert [s.fields for s in guarded.collect_now()] == [{"up": True}]
    assert guarded.runs == 2
    assert not hasattr(GuardedProbe(Plain(), "plain"), "collect_now")
    built = build_probe(HostSettings.model_validate({"type": "host"}))
    assert isinstance(built, GuardedProbe) and built.guard.probe == "host"


def test_the_probes_tag_rule_is_the_wires() -> None:
    """agent/probes/base.py's TAG_FORBIDDEN refuses exactly what the wire refuses in a tag
    (it mirrors common/wire.py, which keeps its pattern private)."""
    for code in [*range(0x300), 0x2028, 0x2029, 0x3000, 0xFEFF]:
        text = f"a{chr(code)}b"
        try:
            check_samples([Sample("netdev", TS, {"device": text}, {"up": True})])
            wire_ok = True
        except WireError:
            wire_ok = False
        assert wire_ok is not bool(TAG_FORBIDDEN_RE.search(text)), hex(code)
