"""Per-value checks on what probes report: a value a device made up costs that value, never
the batch.

The scheduler spools a probe's samples in batches and the wire contract refuses a batch holding
one bad value (an integer past int64, a float that is not finite, a number where a bool belongs).
A device can send any of these: a Counter64 of 2**64-1 in an error column, a negative
ifHighSpeed.  So each probe passes its samples through a :class:`ValueGuard` first: a value
outside its type or its plausible range is dropped from its sample (the sample keeps its other
fields), counted per cause and logged once per cause; a sample left with nothing is dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Iterable
from typing import Final

from common.wire import MIN_TS_MS, FieldValue, Sample, WireError, check_samples

log = logging.getLogger(__name__)

# Plausible ranges of the numbers devices and peers tell us, per field name (any kind).  A value
# outside is not a measurement: 10 Tbit/s is past any school's or district's port.
PLAUSIBLE: Final[dict[str, tuple[float, float]]] = {
    "speed_mbps": (0.0, 10_000_000.0),
    "link_mbps": (0.0, 10_000_000.0),
    "in_bps": (0.0, 1e13), "out_bps": (0.0, 1e13),
    "rx_bps": (0.0, 1e13), "tx_bps": (0.0, 1e13),
    "in_errors": (0.0, math.inf), "out_errors": (0.0, math.inf),  # past int64: the wire says
    "errors": (0.0, math.inf), "drops": (0.0, math.inf),
    "uptime_s": (0.0, 100 * 365 * 86400.0),
    "clients": (0.0, 100_000.0),
    "down_mbps": (0.0, 1_000_000.0), "up_mbps": (0.0, 1_000_000.0),
    "rtt_ms": (0.0, 600_000.0), "jitter_ms": (0.0, 600_000.0),
    "bytes": (0.0, math.inf), "duration_s": (0.0, 86_400.0),
}


def why_bad(kind: str, name: str, value: FieldValue, *, wire: bool = True) -> str | None:
    """Why ``value`` cannot be field ``name`` of a ``kind`` sample; None when it can.

    Type, int64 range and any bounds the kind declares are the wire's own rules (asked of
    common/wire.py, so they are stated once); PLAUSIBLE adds what a device cannot mean.
    """
    if not isinstance(value, bool) and isinstance(value, int | float):
        low, high = PLAUSIBLE.get(name, (-math.inf, math.inf))
        if math.isfinite(value) and not low <= value <= high:
            return f"outside the plausible range {low:g}..{high:g}"
    if not wire:
        return None
    try:
        check_samples([Sample(kind, MIN_TS_MS, {}, {name: value})])
    except WireError as exc:
        return f"{exc.cause}: {exc.detail.split(': ', 1)[-1][:80]}"
    return None


class ValueGuard:
    """Drops bad values from one probe's samples; counts and logs why (once per cause)."""

    def __init__(self, probe: str) -> None:
        self.probe = probe
        self.dropped: Counter[str] = Counter()  # "kind.field: why" -> values dropped, ever
        self._logged: set[str] = set()

    def clean(self, samples: Iterable[Sample]) -> list[Sample]:
        """The samples with every bad value removed; a sample left without fields is dropped."""
        out = []
        for sample in samples:
            whole: WireError | None = None
            try:
                check_samples([sample])
            except WireError as exc:
                whole = exc  # find out which values (or the tags, the time) are at fault
            fields: dict[str, FieldValue] = {}
            for name, value in sample.fields.items():
                why = why_bad(sample.kind, name, value, wire=whole is not None)
                if why is None:
                    fields[name] = value
                else:
                    self._count(sample, f"{sample.kind}.{name}: {why}", value)
            if not fields:
                continue
            fixed = sample if len(fields) == len(sample.fields) else dataclasses.replace(
                sample, fields=fields)
            if whole is not None:
                try:  # what remains (tags, time stamp) must pass the contract on its own
                    check_samples([fixed])
                except WireError as exc:
                    self._count(sample, f"{sample.kind}: {exc.cause}: {exc.detail[:80]}", None)
                    continue
            out.append(fixed)
        return out

    def _count(self, sample: Sample, cause: str, value: FieldValue | None) -> None:
        self.dropped[cause] += 1
        if cause not in self._logged:  # once per cause: a broken device would flood the log
            self._logged.add(cause)
            where = ", ".join(f"{k}={v}" for k, v in sorted(sample.tags.items()))
            log.warning("probe %s: dropped %s (%s; value %r); further drops of this cause are "
                        "only counted", self.probe, cause, where, value)
