"""The rules ignore a speed test whose evidence is too thin (issue 18): a figure over too few
bytes or too short a time does not judge a school, however good or bad it is."""

from __future__ import annotations

import dataclasses

from collector.rules.state import MIN_SPEEDTEST_BYTES, MIN_SPEEDTEST_S
from common.wire import Sample
from tests.rules_fixtures import HOUR, at, engine, gw, inventory, school, speedtest

NOW = at(2, 8)  # Wednesday 08:00
MIB = 1 << 20


def test_thin_results_are_ignored_and_full_ones_count() -> None:
    """A 0.3 Mbit/s 'result' from 40 KB and a 0.2 s one are not counted; the real 30 Mbit/s
    test over 37 MB and 10 s is the school's value; results without the fields still count."""
    eng, _ = engine(inventory(school("s1")), {"id": "r", "metric": "access_mbps",
                                              "threshold": 10, "statistic": "min"}, now_ms=NOW)

    def with_evidence(ts: int, down: float, moved: int, took: float) -> Sample:
        sample = speedtest(ts, down)
        return dataclasses.replace(sample, fields={**sample.fields, "bytes": moved,
                                                   "duration_s": took})
    eng.observe(gw("s1"), [
        with_evidence(NOW - 3 * HOUR, 0.3, 40_000, 10.5),
        with_evidence(NOW - 2 * HOUR, 2.0, 64 * MIB, 0.2),
        with_evidence(NOW - HOUR, 30.0, 37 * MIB, 10.4)])
    assert eng.evaluate()[0].value == 30.0
    eng.observe(gw("s1"), [speedtest(NOW - HOUR // 2, 20.0)])  # an older agent: no evidence
    assert eng.evaluate()[0].value == 20.0
    assert MIN_SPEEDTEST_BYTES > 40_000 and MIN_SPEEDTEST_S > 0.2
