"""Exact threshold comparison and the statistics of measured figures (one definition each).

The rules, the report and the tier counts all compare through :func:`meets` and take
percentiles through :func:`statistic`, so a verdict cannot differ between them.

Why decimal: a measured figure is what its shortest ``repr`` says (9.2 is "9.2", not
9.199999999999999289...), and a threshold with a tolerance is a product: in binary floating
point ``10 * (1 - 0.08)`` is 9.200000000000001, so a school at exactly 9.2 Mbit/s per class
would miss a 10M target with an 8 % tolerance. Comparing ``Decimal(repr(value))`` with the
limit computed in decimal gives the answer a person computes by hand.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Final

# The operators work alike on floats and Decimals.
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
_HUNDRED: Final = Decimal(100)
# Nominal access tiers (Mbit/s) of the policies: 4M (教学点), 10M, 100M, 1000M (千兆到校).
TIERS_MBPS: Final = (4, 10, 100, 1000)
# Default rate tolerance (rules.rate_tolerance_pct), derived by bench/goodput_tolerance.py: TCP
# payload is at most 1448/1538 = 94.15 % of an Ethernet wire, and the worst goodput measured
# on links shaped to 4, 5, 10, 100 and 1000 Mbit/s was 93.4 % (docs/benchmarks.md): 7 %.
RATE_TOLERANCE_PCT: Final = 7.0
STATISTIC_RE: Final = re.compile(r"^(p([1-9]\d?|100)|min|max|mean|median|last)$")


def exact(value: float | int | Decimal) -> Decimal:
    """The decimal a figure stands for: a float by its shortest repr, 9.2 -> Decimal('9.2')."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(repr(float(value)))


def limit(target: float | int, tolerance_pct: float | int = 0) -> Decimal:
    """The value that still meets ``target`` with a tolerance: T x (1 - tolerance/100), exact."""
    return exact(target) * (1 - exact(tolerance_pct) / _HUNDRED)


def meets(value: float | int, target: float | int, tolerance_pct: float | int = 0,
          comparator: str = ">=") -> bool:
    """True when ``value comparator target x (1 - tolerance_pct/100)``, in exact decimal.

    The tolerance only widens ``>=`` and ``>`` (a measured rate below its nominal line rate);
    for the other comparators it is ignored. Raises ValueError for an unknown comparator.
    """
    compare = _COMPARE.get(comparator)
    if compare is None:
        raise ValueError(f"unknown comparator {comparator!r}")
    if math.isnan(value):
        return False
    if not tolerance_pct or comparator not in (">=", ">"):
        # Without a product, floats compare exactly as their reprs do (repr round-trips and
        # rounding is monotonic): the fast path for the million classroom results of a pass.
        return compare(float(value), float(target))
    return compare(exact(value), limit(target, tolerance_pct))


def quotient(numerator: float | int, denominator: float | int, scale: int = 1) -> float:
    """``scale x numerator / denominator`` rounded once, from exact decimals.

    27.6 / 3 is 9.200000000000001 in floats; here it is 9.2, the figure a person writes down
    (the nearest float to the exact quotient). Raises ZeroDivisionError on a zero denominator.
    """
    if denominator == 0:
        raise ZeroDivisionError("quotient with a zero denominator")
    return float(exact(numerator) * scale / exact(denominator))


def nearest_rank(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile: the smallest value with at least pct % of values <= it.

    Rank ``ceil(pct/100 x n)`` (at least 1) of the sorted values, always a measured value.
    This is the one percentile of schoolmon; InfluxQL's ``percentile()`` rounds the rank
    instead (7 values, p90: the 6th, here the 7th), so no figure is ever taken from it.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    # The rank in exact decimal too: 0.9 x 10 must be 9, not 9.000000000000002 (rank 10).
    rank = max(1, math.ceil(exact(pct) * len(ordered) / _HUNDRED))
    return ordered[rank - 1]


def statistic(values: Sequence[float], name: str) -> float:
    """A statistic of a non-empty list: pNN (nearest rank), min, max, mean, median, last."""
    if not values:
        raise ValueError("statistic of no values")
    if name == "last":
        return values[-1]
    if name == "mean":
        return math.fsum(values) / len(values)
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if not STATISTIC_RE.match(name):
        raise ValueError(f"{name!r} is not a statistic")
    return nearest_rank(values, 50.0 if name == "median" else float(name[1:]))
