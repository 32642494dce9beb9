"""SNMP counter arithmetic: wraps of 32/64-bit counters, resets, agent restarts, first polls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.probes.snmp_parsers.counters import (
    WRAP_CEILING_BPS,
    agent_restarted,
    counter_delta,
    rate_bps,
)

C32, C64 = 2**32, 2**64


# (old, new, elapsed s, counter bits, link bps, expected bps)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param((None, 1000, 10.0, 64, None, None), id="first-poll"),
        pytest.param((1000, None, 10.0, 64, None, None), id="counter-vanished"),
        pytest.param((1000, 2250, 10.0, 64, None, 1000.0), id="plain-64"),
        pytest.param((1000, 2250, 10.0, 32, None, 1000.0), id="plain-32"),
        pytest.param((1000, 1000, 10.0, 32, None, 0.0), id="idle"),
        pytest.param((C32 - 250, 1000, 10.0, 32, None, 1000.0), id="wrap-32"),
        pytest.param((C32 - 1, 0, 1.0, 32, None, 8.0), id="wrap-32-to-zero"),
        pytest.param((C64 - 250, 1000, 10.0, 64, None, 1000.0), id="wrap-64"),
        pytest.param((C32 - 250, 1000, 10.0, 32, 1e6, 1000.0), id="wrap-within-link"),
        # 4 GB in 10 s on a 100 Mbit/s port: a reset, not a wrap.
        pytest.param((10, 5, 10.0, 32, 100e6, None), id="32-reset-beyond-link"),
        # A 64-bit counter going back is a reset: the "wrap" would be ~10^19 bytes.
        pytest.param((5_000_000_000, 1000, 60.0, 64, None, None), id="64-reset"),
        pytest.param((1000, 2000, 0.0, 64, None, None), id="no-time"),
        pytest.param((1000, 2000, -1.0, 64, None, None), id="clock-back"),
        pytest.param((C32 + 5, 10, 1.0, 32, None, None), id="out-of-range-old"),
        pytest.param((-1, 10, 1.0, 32, None, None), id="negative"),
    ],
)
def test_rate_bps(case: tuple[int | None, int | None, float, int, float | None, float | None]
                  ) -> None:
    """Bits per second, or None when the rate cannot be known for sure."""
    old, new, elapsed, bits, max_bps, expected = case
    assert rate_bps(old, new, elapsed, bits, max_bps) == expected


def test_counter_delta_reports_the_wrap() -> None:
    """The increase and whether the counter wrapped to get there."""
    assert counter_delta(10, 25, 32) == (15, False)
    assert counter_delta(C32 - 5, 5, 32) == (10, True)
    assert counter_delta(C32, 5, 32) is None


@given(old=st.integers(0, C64 - 1), step=st.integers(0, 10**12),
       bits=st.sampled_from([32, 64]), elapsed=st.floats(0.5, 3600))
def test_any_single_wrap_is_recovered(old: int, step: int, bits: int, elapsed: float) -> None:
    """Whatever the start, an increase that fits the counter and a plausible link comes back."""
    modulo = 1 << bits
    old %= modulo
    step %= modulo
    new = (old + step) % modulo
    bps = rate_bps(old, new, elapsed, bits)
    if step * 8 / elapsed <= WRAP_CEILING_BPS:
        assert bps == pytest.approx(step * 8 / elapsed)


@pytest.mark.parametrize(
    ("old", "new", "elapsed", "restarted"),
    [
        pytest.param(None, 500, 60.0, False, id="first-poll"),
        pytest.param(500, None, 60.0, False, id="no-uptime"),
        pytest.param(100_000, 106_000, 60.0, False, id="steady"),
        pytest.param(100_000, 105_900, 60.0, False, id="steady-with-jitter"),
        pytest.param(100_000, 3_000, 60.0, True, id="uptime-went-back"),
        # Up for 20 s although 10 minutes passed: rebooted after the last poll.
        pytest.param(1_000, 2_000, 600.0, True, id="up-less-than-elapsed"),
        # TimeTicks wrap after 497 days: uptime small again, but exactly as time says.
        pytest.param(2**32 - 1_000, 5_000, 60.0, False, id="timeticks-wrap"),
        pytest.param(2**32 - 1_000, 50_000, 60.0, True, id="restart-near-the-wrap"),
    ],
)
def test_agent_restarted(old: int | None, new: int | None, elapsed: float,
                         restarted: bool) -> None:
    """sysUpTime tells a restart (counters reset) from a steady agent and from a wrap."""
    assert agent_restarted(old, new, elapsed) is restarted
