"""Rates from SNMP counters: wraps of 32- and 64-bit counters, agent restarts, first polls.

Everything here is pure arithmetic.  The rule throughout: when a rate cannot be known for sure,
there is no rate, never a wrong one.
"""

from __future__ import annotations

TIMETICKS_MODULO = 2**32  # sysUpTime is TimeTicks (1/100 s), wraps after ~497 days


def counter_delta(old: int, new: int, bits: int) -> tuple[int, bool] | None:
    """(increase, wrapped) of a Counter32/Counter64 between two readings; None if impossible."""
    modulo = 1 << bits
    if not (0 <= old < modulo and 0 <= new < modulo):
        return None
    if new >= old:
        return new - old, False
    return new + modulo - old, True


def rate_bps(old: int | None, new: int | None, elapsed_s: float, bits: int,
             max_bps: float | None = None) -> float | None:
    """Bits per second of an octet counter; None on the first poll, no time, or an implausible wrap.

    A counter that went down is taken as one wrap.  A real wrap needs the counter to have been
    near its top, so the increase it implies is small; a reset (interface or line-card
    re-initialised) implies an increase far beyond the link: that is rejected by ``max_bps``
    (the link speed when known) or, failing that, by ``WRAP_CEILING_BPS``.
    """
    if old is None or new is None or elapsed_s <= 0:
        return None
    delta = counter_delta(old, new, bits)
    if delta is None:
        return None
    increase, wrapped = delta
    bps = increase * 8 / elapsed_s
    if wrapped and bps > min(max_bps or WRAP_CEILING_BPS, WRAP_CEILING_BPS) * 1.05:
        return None
    return bps


# Faster than any school's or district's port (400 GbE): a "wrap" implying more is a reset.
WRAP_CEILING_BPS = 400e9


def agent_restarted(old_ticks: int | None, new_ticks: int | None, elapsed_s: float) -> bool:
    """True when sysUpTime says the agent restarted since the previous poll (counters reset).

    The agent has been up for less time than has passed since our previous poll, or its uptime
    went back.  A TimeTicks wrap (uptime near 2**32 cs before, small after, and matching the
    elapsed time) is not a restart.  Unknown uptimes never count as a restart.
    """
    if old_ticks is None or new_ticks is None:
        return False
    slack_ticks = 200  # 2 s: the get and our clock are not read at the same instant
    expected = old_ticks + elapsed_s * 100
    if new_ticks < old_ticks:
        wrapped_to = expected - TIMETICKS_MODULO
        return not (expected >= TIMETICKS_MODULO and abs(new_ticks - wrapped_to) <= slack_ticks
                    + elapsed_s * 5)
    return new_ticks + slack_ticks < elapsed_s * 100
