"""The iface probe on recorded counter sequences (no psutil)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from agent.probes.iface import Counters, IfaceProbe, IfaceSettings, IfaceSources, LinkState
from common.wire import Sample, check_samples

T0_MS = 1_763_890_000_000


def counters(sent: int, recv: int, errs: tuple[int, int, int, int] = (0, 0, 0, 0)) -> Counters:
    """Counters with the byte totals and (errin, errout, dropin, dropout)."""
    return Counters(sent, recv, *errs)


@dataclass
class Reading:
    """What the sources return at one collect."""

    at: float  # monotonic seconds
    nics: dict[str, Counters]
    links: dict[str, LinkState] = field(default_factory=dict)


class Recorded:
    """IfaceSources replaying readings; collect() advances to the next one."""

    def __init__(self, readings: list[Reading]) -> None:
        self.readings = readings
        self.i = -1

    def advance(self) -> None:
        """Move to the next reading."""
        self.i += 1

    def sources(self) -> IfaceSources:
        """The sources the probe reads."""
        def cur() -> Reading:
            return self.readings[self.i]

        def links() -> Mapping[str, LinkState]:
            r = cur()
            return {n: r.links.get(n, LinkState(True, 1000)) for n in r.nics} | r.links

        return IfaceSources(counters=lambda: cur().nics, links=links,
                            monotonic=lambda: cur().at,
                            now_ms=lambda: T0_MS + int(cur().at * 1000))


def run(readings: list[Reading], **settings: object) -> list[dict[str, Sample]]:
    """Collect once per reading; per collect, the samples by NIC name."""
    recorded = Recorded(readings)
    probe = IfaceProbe(IfaceSettings.model_validate({"type": "iface", **settings}),
                       recorded.sources())
    results = []
    for _ in readings:
        recorded.advance()
        samples = probe.collect()
        check_samples(samples)  # everything the probe makes is valid on the wire
        results.append({s.tags["iface"]: s for s in samples})
    return results


def rates(sample: Sample) -> tuple[object, object]:
    """(rx_bps, tx_bps), None where absent."""
    return sample.fields.get("rx_bps"), sample.fields.get("tx_bps")


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(
            [Reading(100.0, {"eth0": counters(1_000, 5_000)})],
            [(None, None)],
            id="first-reading-no-rate",
        ),
        pytest.param(
            [Reading(100.0, {"eth0": counters(1_000, 5_000)}),
             Reading(110.0, {"eth0": counters(2_250, 130_000)})],
            [(None, None), ((130_000 - 5_000) * 8 / 10, (2_250 - 1_000) * 8 / 10)],
            id="second-reading-exact-rate",
        ),
        pytest.param(
            [Reading(0.0, {"eth0": counters(0, 0)}),
             Reading(0.5, {"eth0": counters(62_500_000, 125_000_000)}),
             Reading(1.5, {"eth0": counters(62_500_000, 125_000_000)})],
            [(None, None), (2e9, 1e9), (0.0, 0.0)],
            id="sub-second-interval-and-idle",
        ),
        pytest.param(
            [Reading(100.0, {"eth0": counters(10_000, 10_000)}),
             Reading(110.0, {"eth0": counters(20_000, 500)}),
             Reading(120.0, {"eth0": counters(30_000, 1_500)})],
            [(None, None), (None, None), (800.0, 8_000.0)],
            id="rx-counter-reset-no-rate-then-resumes",
        ),
        pytest.param(
            [Reading(100.0, {"eth0": counters(10_000, 10_000)}),
             Reading(110.0, {"eth0": counters(5, 20_000)})],
            [(None, None), (None, None)],
            id="tx-counter-reset-no-rate",
        ),
        pytest.param(
            [Reading(100.0, {"eth0": counters(0, 0)}),
             Reading(100.0, {"eth0": counters(10, 10)})],
            [(None, None), (None, None)],
            id="no-time-elapsed-no-rate",
        ),
    ],
)
def test_rates_from_counter_deltas(readings: list[Reading],
                                   expected: list[tuple[object, object]]) -> None:
    """Bits per second from byte deltas; none on the first reading or after a reset."""
    got = [rates(r["eth0"]) for r in run(readings)]
    assert got == expected


def test_nic_appears_disappears_reappears() -> None:
    """A new NIC has no rate at first; one that came back starts again without a rate."""
    results = run([
        Reading(0.0, {"eth0": counters(0, 0)}),
        Reading(10.0, {"eth0": counters(100, 100), "usb0": counters(1_000, 1_000)}),
        Reading(20.0, {"eth0": counters(200, 200), "usb0": counters(2_000, 3_000)}),
        Reading(30.0, {"eth0": counters(300, 300)}),
        Reading(40.0, {"eth0": counters(400, 400), "usb0": counters(9_000, 9_000)}),
        Reading(50.0, {"eth0": counters(500, 500), "usb0": counters(9_500, 9_250)}),
    ])
    assert [sorted(r) for r in results] == [
        ["eth0"], ["eth0", "usb0"], ["eth0", "usb0"], ["eth0"], ["eth0", "usb0"],
        ["eth0", "usb0"],
    ]
    assert rates(results[1]["usb0"]) == (None, None)  # appeared
    assert rates(results[2]["usb0"]) == (2_000 * 8 / 10, 1_000 * 8 / 10)
    assert rates(results[4]["usb0"]) == (None, None)  # reappeared: no rate over the gap
    assert rates(results[5]["usb0"]) == (250 * 8 / 10, 500 * 8 / 10)
    assert all(rates(r["eth0"]) == (80.0, 80.0) for r in results[1:])


@pytest.mark.parametrize(
    ("settings", "nics", "expected"),
    [
        pytest.param({}, ["eth0", "lo", "lo:1", "wlan0"], ["eth0", "wlan0"],
                     id="loopback-excluded"),
        pytest.param({"roles": {"lo": "other"}}, ["eth0", "lo"], ["eth0", "lo"],
                     id="loopback-when-listed"),
        pytest.param({"only_listed": True, "roles": {"eth1": "lan"}}, ["eth0", "eth1", "lo"],
                     ["eth1"], id="only-listed"),
        pytest.param({"only_listed": True}, ["eth0", "lo"], [], id="only-listed-none"),
        pytest.param({"roles": {"eth9": "wan"}}, ["eth0"], ["eth0"], id="listed-but-absent"),
    ],
)
def test_which_nics_are_measured(settings: dict[str, object], nics: list[str],
                                 expected: list[str]) -> None:
    """Loopback out by default; only_listed limits to the roles given."""
    (result,) = run([Reading(1.0, {n: counters(1, 1) for n in nics})], **settings)
    assert sorted(result) == expected


def test_roles_tagged_and_unlisted_other() -> None:
    """The role tag comes from roles; unlisted NICs are 'other'."""
    (result,) = run(
        [Reading(1.0, {n: counters(1, 1) for n in ("eth0", "eth1", "wlan0", "docker0")})],
        roles={"eth0": "wan", "eth1": "lan", "wlan0": "wlan"},
    )
    assert {n: s.tags for n, s in result.items()} == {
        "eth0": {"iface": "eth0", "role": "wan"},
        "eth1": {"iface": "eth1", "role": "lan"},
        "wlan0": {"iface": "wlan0", "role": "wlan"},
        "docker0": {"iface": "docker0", "role": "other"},
    }


def test_link_fields_errors_drops_and_timestamp() -> None:
    """up, link_mbps (only when known), errors and drops summed, ts from now_ms."""
    (result,) = run([Reading(
        2.0,
        {"eth0": counters(1, 1, (1, 2, 3, 4)), "eth1": counters(1, 1), "tun0": counters(1, 1)},
        {"eth0": LinkState(True, 1000), "eth1": LinkState(False, 0)},
    )])
    eth0, eth1 = result["eth0"], result["eth1"]
    assert eth0.kind == "iface" and eth0.ts_ms == T0_MS + 2000
    assert eth0.fields == {"up": True, "errors": 3, "drops": 7, "link_mbps": 1000}
    assert eth1.fields == {"up": False, "errors": 0, "drops": 0}  # speed 0: no link_mbps
    assert "link_mbps" in result["tun0"].fields  # default link of the recorder: 1000


def test_nic_without_link_state_is_down() -> None:
    """A NIC with counters but no stats entry is reported down, without link speed."""
    recorded = Recorded([Reading(1.0, {"eth0": counters(1, 1)})])
    src = recorded.sources()
    sources = IfaceSources(src.counters, lambda: {}, src.monotonic, src.now_ms)
    recorded.advance()
    (sample,) = IfaceProbe(IfaceSettings(type="iface"), sources).collect()
    assert sample.fields["up"] is False
    assert "link_mbps" not in sample.fields


def test_settings_reject_unknown_role() -> None:
    """Roles are wan/lan/wlan/other."""
    with pytest.raises(ValueError, match=r"roles\.eth0"):
        IfaceSettings.model_validate({"type": "iface", "roles": {"eth0": "uplink"}})
