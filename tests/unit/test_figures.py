"""The one threshold comparison and the one percentile (common/figures.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from collector.rules.results import tier_of
from collector.rules.settings import RulesSettings
from common.figures import (
    RATE_TOLERANCE_PCT,
    exact,
    limit,
    meets,
    nearest_rank,
    quotient,
    statistic,
)


@pytest.mark.parametrize(("value", "target", "tol", "met"), [
    (9.2, 10, 8, True),  # 10 x 0.92 is 9.200000000000001 in floats
    (4.6, 5, 8, True),  # 5 x 0.92 is 4.6000000000000005
    (3.68, 4, 8, True),
    (920.0, 1000, 8, True),
    (9.199999, 10, 8, False),
    (919.99, 1000, 8, False),
    (10.0, 10, 0, True),
    (9.999999999, 10, 0, False),
    (float("nan"), 10, 8, False),
])
def test_meets_at_the_exact_edge(value: float, target: float, tol: float, met: bool) -> None:
    """A value exactly at T x (1 - tolerance) meets T; a hair below does not."""
    assert meets(value, target, tol) is met


def test_comparators_and_tolerance_only_widening_lower_bounds() -> None:
    """>, <=, <, ==; the tolerance applies to >= and > only."""
    assert meets(9.2, 10, 8, ">") is False and meets(9.21, 10, 8, ">") is True
    assert meets(9.5, 10, 8, "<=") is True and meets(10.0, 10, 8, "<") is False
    assert meets(1.0, 1, 0, "==") is True and meets(0.0, 1, 0, "==") is False
    with pytest.raises(ValueError, match="unknown comparator"):
        meets(1.0, 1, 0, "=>")


def test_exact_decimals_and_quotients() -> None:
    """Figures are what their repr says; a quotient is rounded once."""
    assert exact(9.2) == Decimal("9.2") and exact(3) == Decimal(3)
    assert limit(10, 8) == Decimal("9.2") and limit(5, 8) == Decimal("4.6")
    assert 27.6 / 3 != 9.2 and quotient(27.6, 3) == 9.2
    assert quotient(7, 10, 100) == 70.0
    with pytest.raises(ZeroDivisionError):
        quotient(1.0, 0)


def test_nearest_rank_percentile() -> None:
    """Rank ceil(p/100 x n): 7 values, p90 -> the 7th; 10 values, p90 -> the 9th."""
    seven = [9.2, 3.0, 4.0, 3.5, 6.0, 5.0, 9.0]
    assert nearest_rank(seven, 90) == 9.2  # InfluxQL's percentile() gives 9.0 (rank 6)
    assert nearest_rank(list(range(1, 11)), 90) == 9
    # 0.07 x 100 is 7.000000000000001 in floats: the rank is 7, not 8.
    assert nearest_rank([float(v) for v in range(1, 101)], 7) == 7.0
    assert nearest_rank([5.0], 1) == 5.0 and nearest_rank([1.0, 2.0], 100) == 2.0
    with pytest.raises(ValueError, match="no values"):
        nearest_rank([], 90)


def test_statistics() -> None:
    """pNN, median, min, max, mean, last; an unknown name is refused."""
    values = [4.0, 1.0, 3.0, 2.0]
    assert [statistic(values, n) for n in ("p50", "median", "min", "max", "mean", "last")] == [
        2.0, 2.0, 1.0, 4.0, 2.5, 2.0]
    with pytest.raises(ValueError, match="not a statistic"):
        statistic(values, "p900")


def test_default_tolerance_is_the_measured_one() -> None:
    """7 % (bench/goodput_tolerance.py): the rules' default; 930 meets 1000M, 9.3 meets 10M."""
    assert RulesSettings().rate_tolerance_pct == RATE_TOLERANCE_PCT == 7.0
    assert meets(930.0, 1000, RATE_TOLERANCE_PCT) and meets(9.3, 10, RATE_TOLERANCE_PCT)
    assert meets(3.72, 4, RATE_TOLERANCE_PCT) and not meets(3.71, 4, RATE_TOLERANCE_PCT)


def test_tiers_use_the_same_comparison() -> None:
    """The tier chart's and status' tier: exactly 9.2 is 10M, 3.68 is 4M (8 % tolerance)."""
    assert tier_of(9.2, 8.0) == 10 and tier_of(3.68, 8.0) == 4 and tier_of(3.67, 8.0) == 0
