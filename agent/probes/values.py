"""Per-value checks on what probes report: a value a device made up costs that value, never
the batch.

The scheduler spools a probe's samples in batches and the wire contract refuses a batch holding
one bad value (an integer past int64, a float that is not finite, a number outside its kind's
declared bounds, a number where a bool belongs).  A device can send any of these: a Counter64 of
2**64-1 in an error column, a negative ifHighSpeed.  So each probe passes its samples through a
:class:`ValueGuard` first: a value the wire would refuse is dropped from its sample (the sample
keeps its other fields), counted per cause and logged once per cause; a sample left with
nothing, or whose tags or time the wire refuses, is dropped.  The rules are the wire's own
(common/wire.py and the bounds in common/kinds.py): stated once, asked here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from common.wire import FieldValue, Sample, WireError, check_samples

if TYPE_CHECKING:
    from agent.probes.base import Probe

log = logging.getLogger(__name__)


def why_bad(sample: Sample, name: str, value: FieldValue) -> str | None:
    """Why the wire refuses ``value`` as field ``name`` of ``sample``'s kind; None if it does
    not."""
    try:
        check_samples([Sample(sample.kind, sample.ts_ms, {}, {name: value})])
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
            try:
                check_samples([sample])
            except WireError:
                pass  # find out which values (or the tags, the time) are at fault
            else:
                out.append(sample)
                continue
            fields: dict[str, FieldValue] = {}
            for name, value in sample.fields.items():
                why = why_bad(sample, name, value)
                if why is None:
                    fields[name] = value
                else:
                    self._count(sample, f"{sample.kind}.{name}: {why}", value)
            if not fields:
                continue
            fixed = sample if len(fields) == len(sample.fields) else dataclasses.replace(
                sample, fields=fields)
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


class GuardedProbe:
    """Any probe with a ValueGuard on what it returns (``collect`` and ``collect_now``): the
    last line of defence for probes that do not guard their values themselves."""

    def __init__(self, probe: Probe, name: str) -> None:
        self.probe = probe
        self.guard = ValueGuard(name)
        if hasattr(probe, "collect_now"):  # the scheduler looks for it with getattr
            self.collect_now = self._collect_now

    def collect(self) -> list[Sample]:
        """The probe's samples, bad values dropped."""
        return self.guard.clean(self.probe.collect())

    def _collect_now(self) -> list[Sample]:
        now: Callable[[], list[Sample]] = getattr(self.probe, "collect_now")  # noqa: B009
        return self.guard.clean(now())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.probe, name)  # the probe's own attributes (state, guard, ...)
