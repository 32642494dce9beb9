"""One percentile: the report's tier of a school equals the rules' tier, on real InfluxDB 1.x.

A teaching point with 7 speed tests: InfluxQL's ``percentile()`` rounds the rank (p90 of 7 is
the 6th value, 9.0 Mbit/s: the 4M tier), the rules take the nearest rank (the 7th, 9.3: the 10M
tier, exactly at 10 x (1 - 7 %), the default tolerance). The report must say what the rules say.
"""

from __future__ import annotations

import datetime as dt

import pytest

from collector.config import Influx1Storage
from collector.reports.aggregate import tier_counts
from collector.reports.load import read_access
from collector.reports.model import Period
from collector.reports.query import InfluxReader, QueryError
from collector.rules.results import tier_of
from collector.storage.influx1 import Influx1Writer
from collector.storage.lineprotocol import format_line
from common.figures import RATE_TOLERANCE_PCT, statistic
from tests.conftest import Services

pytestmark = pytest.mark.integration

TESTS = [3.0, 3.5, 4.0, 5.0, 6.0, 9.0, 9.3]


def test_report_tier_is_the_rules_tier(services: Services, influx_db: str) -> None:
    """Report access = the rules' nearest-rank p90; InfluxQL's percentile() would differ."""
    period = Period(dt.date(2026, 11, 16), dt.date(2026, 11, 18), "Asia/Shanghai")
    storage = Influx1Storage(kind="influxdb1", url=services.influx_url, database=influx_db)
    tags = {"district": "d1", "school": "tp1", "agent": "tp1-gw", "server": "hub"}
    lines = [format_line("speedtest", tags, {"down_mbps": v}, period.start_ms + i * 3_600_000)
             for i, v in enumerate(TESTS)]
    # A failed test (0) is no measurement, for the report as for the rules.
    lines.append(format_line("speedtest", tags, {"down_mbps": 0.0}, period.start_ms + 9_000_000))
    Influx1Writer(storage).write(lines)
    reader = InfluxReader(storage)

    access = read_access(reader, period, "p90")
    assert access == {"tp1": statistic(TESTS, "p90")} == {"tp1": 9.3}
    assert tier_counts(access, ["tp1"], RATE_TOLERANCE_PCT)[10] == 1
    assert tier_of(access["tp1"], RATE_TOLERANCE_PCT) == 10
    # Why the report no longer asks InfluxDB: its percentile() answers the 6th value.
    [influx] = reader.query(f'SELECT percentile("down_mbps", 90) AS p FROM "speedtest" '
                            f'WHERE "down_mbps" > 0 AND time >= {period.start_ms}ms')
    assert influx.rows[0]["p"] == 9.0 and tier_of(9.0, RATE_TOLERANCE_PCT) == 4


def test_chunked_reads_give_every_row_once(services: Services, influx_db: str) -> None:
    """query_chunked streams a series in pieces; together they are the whole series."""
    storage = Influx1Storage(kind="influxdb1", url=services.influx_url, database=influx_db)
    tags = {"district": "d1", "school": "s1", "agent": "s1-gw", "server": "hub"}
    Influx1Writer(storage).write([format_line("speedtest", tags, {"down_mbps": float(i)},
                                              1_764_000_000_000 + i * 1000)
                                  for i in range(1, 11)])
    reader = InfluxReader(storage)
    query = 'SELECT "down_mbps" FROM "speedtest" GROUP BY "school"'
    pieces = list(reader.query_chunked(query, chunk_size=3))
    assert len(pieces) == 4 and {p.tags["school"] for p in pieces} == {"s1"}
    assert [r["down_mbps"] for p in pieces for r in p.rows] == [float(i) for i in range(1, 11)]
    assert list(reader.query_chunked('SELECT "down_mbps" FROM "nothing"')) == []
    with pytest.raises(QueryError, match="InfluxDB"):
        list(reader.query_chunked("SELECT FROM WHERE"))
