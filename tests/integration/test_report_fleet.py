"""The district report's fleet section, read from a real InfluxDB: states, releases, never heard."""

from __future__ import annotations

import datetime as dt
import urllib.request

import pytest

from collector.config import Influx1Storage
from collector.inventory import Inventory
from collector.reports.csvout import render_fleet_csv
from collector.reports.fleet import fleet_state, read_fleet
from collector.reports.html import render_html
from collector.reports.model import Period, ReportData
from collector.reports.query import InfluxReader
from tests.conftest import Services

pytestmark = pytest.mark.integration

NOW_MS = 1_796_000_000_000
HOUR, DAY = 3600 * 1000, 86400 * 1000


def test_fleet_states_at_their_thresholds() -> None:
    """live within 1 h (inclusive), at risk within 7 days, dropped off after or never."""
    assert fleet_state(NOW_MS - HOUR, NOW_MS) == "live"
    assert fleet_state(NOW_MS - HOUR - 1, NOW_MS) == "at_risk"
    assert fleet_state(NOW_MS - 7 * DAY, NOW_MS) == "at_risk"
    assert fleet_state(NOW_MS - 7 * DAY - 1, NOW_MS) == "dropped_off"
    assert fleet_state(None, NOW_MS) == "dropped_off"


def test_report_lists_agents_by_state_release_and_last_contact(
        services: Services, influx_db: str) -> None:
    """Newest sample per agent, as of the report's time; inventory agents never heard too."""
    def point(school: str, agent: str, fields: str, ms: int) -> str:
        return f"agent,district=gz-th,school={school},agent={agent} {fields} {ms}"

    lines = [
        point("s1", "s1-gw", 'rss_mb=40,version="1.1.0",config_hash="aaa"', NOW_MS - 5 * 60000),
        # An older sample of the same agent and one after the report's time: neither counts.
        point("s1", "s1-gw", 'rss_mb=40,version="1.0.0",config_hash="aaa"', NOW_MS - 3 * DAY),
        point("s1", "s1-gw", 'rss_mb=40,version="1.2.0",config_hash="aaa"', NOW_MS + HOUR),
        point("s2", "s2-gw", 'rss_mb=40,version="1.0.0",config_hash="bbb"', NOW_MS - 2 * DAY),
        # A release before agents reported their version: heard, but release unknown.
        point("s3", "s3-gw", "rss_mb=40", NOW_MS - 30 * DAY),
    ]
    request = urllib.request.Request(f"{services.influx_url}/write?db={influx_db}&precision=ms",
                                     data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 204
    inventory = Inventory.model_validate({
        "districts": [{"id": "gz-th", "name": "gz-th"}],
        "schools": [{"id": s, "name": f"School {s}", "district": "gz-th", "category": "urban",
                     "classes": 6}
                    for s in ("s1", "s2", "s3", "s4")],
        "agents": [{"id": "s1-gw", "school": "s1"}, {"id": "s4-gw", "school": "s4"}]})
    reader = InfluxReader(Influx1Storage(kind="influxdb1", url=services.influx_url,
                                         database=influx_db))
    fleet = read_fleet(reader, NOW_MS, inventory)
    assert [(r.agent, r.state, r.version, r.last_ms) for r in fleet] == [
        ("s3-gw", "dropped_off", "", NOW_MS - 30 * DAY),
        ("s4-gw", "dropped_off", "", None),
        ("s2-gw", "at_risk", "1.0.0", NOW_MS - 2 * DAY),
        ("s1-gw", "live", "1.1.0", NOW_MS - 5 * 60000),
    ]
    day = dt.date(2026, 12, 1)
    data = ReportData(policy="p", policy_title="p", period=Period(day, day), schools=[],
                      tiers={}, summaries=[], rows=[], fleet=fleet, generated_ms=NOW_MS)
    page = render_html(data, "en")
    assert 'data-agent="s2-gw" data-state="at_risk" data-version="1.0.0"' in page
    assert "live: 1 · at risk: 1 · dropped off: 2" in page
    assert render_fleet_csv(data).splitlines()[1:] == [
        f"s3,s3-gw,,,{NOW_MS - 30 * DAY},dropped_off", "s4,s4-gw,,,,dropped_off",
        f"s2,s2-gw,1.0.0,bbb,{NOW_MS - 2 * DAY},at_risk",
        f"s1,s1-gw,1.1.0,aaa,{NOW_MS - 5 * 60000},live"]
