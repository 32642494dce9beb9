"""Every dashboard query against real data: agents -> Mosquitto -> collector -> InfluxDB 1.x.

A small district (tests/integration/dashboard_district.py) is published through the real
broker to a real in-process collector (with the dashboard feed for school_info and
agent_status); the rules engine's compliance points go through the same collector's storage.
Then each panel's InfluxQL, with the template variables substituted as Grafana does, must run
and return rows.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.clocks import ClockBook
from collector.config import ClockSettings, CollectorConfig
from collector.dashboard_feed import DashboardFeed
from collector.rules import RulesEngine, RulesSettings
from collector.rules.results import status_lines
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Envelope, Topics, encode_envelope
from tests.conftest import Services, influx_query, influx_rows, wait_until
from tests.integration import dashboard_district as sim

pytestmark = pytest.mark.integration

JSON_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "json"
VALUES = {"district": sim.DISTRICT, "school": "gz-th-001", "classroom": "301", "agent": ".*"}
BOARDS = sorted(JSON_DIR.glob("*.json"))


def _regex_escape(value: str) -> str:
    """Grafana's escaping of a variable value inside an InfluxQL /regex/ (kbn.regexEscape)."""
    return re.sub(r"([\\^$*+?.()|{}\[\]/])", r"\\\1", value)


def substitute(query: str, values: dict[str, str], time_filter: str, interval: str) -> str:
    """Interpolate a panel query like Grafana does for an InfluxQL datasource."""
    query = query.replace("$timeFilter", time_filter)
    query = query.replace("$__interval_ms", str(_ms(interval))).replace("$__interval", interval)
    for name, value in values.items():
        # '.*' is the variables' allValue and goes in as it is; a value is regex-escaped.
        text = value if value == ".*" else _regex_escape(value)
        query = query.replace(f"${name}", text).replace(f"${{{name}}}", text)
    assert "$" not in query.replace("/^", "").replace("$/", ""), query
    return query


def _ms(interval: str) -> int:
    units = {"s": 1000, "m": 60_000, "h": 3_600_000}
    return int(interval[:-1]) * units[interval[-1]]


@dataclass
class District:
    """The database filled by the simulated district."""

    url: str
    db: str


def _publish(port: int, prefix: str, batches: dict[AgentIdentity, list[bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dash-sim",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    topics = Topics(prefix)
    try:
        for who, payloads in batches.items():
            status = "offline" if who.agent == sim.OFFLINE_AGENT else "online"
            client.publish(topics.status(who), status, qos=1, retain=True).wait_for_publish(10)
            for payload in payloads:
                client.publish(topics.data(who), payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def _count(url: str, db: str, measurement: str, field: str) -> int:
    rows = influx_rows(url, db, f'SELECT count("{field}") FROM "{measurement}"')
    return int(rows[0]["count"]) if rows else 0  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def district(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:
    """Publish the district through the real broker and collector; yield the database."""
    db = "dash_" + str(int(time.time()))
    prefix = f"dash{int(time.time())}/v1"
    influx_query(services.influx_url, "", f'CREATE DATABASE "{db}"')
    config = CollectorConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": prefix,
                 "username": None, "client_id": "dash-collector", "session_expiry": "60s"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": db},
        # collector_stats points often enough for the collector panels' differences.
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s", "stats_interval": "200ms"}})
    collector = Collector(config, build_writer(config))
    feed = DashboardFeed(collector.write_points, sim.inventory())
    collector.status_observers.append(feed.on_status)
    collector.start()
    feed.start()
    try:
        assert collector.connected.wait(10)

        now_ms = int(time.time() * 1000)
        samples = sim.agent_samples(now_ms - sim.STEPS * sim.STEP_MS)
        batches = {who: [encode_envelope(Envelope(who.district, who.school, who.agent, seq,
                                                  now_ms, chunk))
                         for seq, chunk in enumerate(_chunks(s, 200), start=1)]
                   for who, s in samples.items()}
        _publish(services.mqtt_port, prefix, batches)
        assert collector.write_points(sim.compliance_lines(now_ms))
        # One agent three days slow, as the collector's clock book records it (agent_clock).
        slow = ClockBook(ClockSettings(confirm_after=0))
        assert collector.write_points(list(slow.correct(
            next(iter(samples)), now_ms - 3 * 86_400_000, now_ms, []).lines))
        # school_status as the rules engine writes it (the access tier panels read it): the
        # real engine over the same samples, its pass at now.
        rules = RulesEngine(sim.inventory(), [], RulesSettings(), clock=lambda: now_ms)
        for who, batch in samples.items():
            rules.observe(who, batch)
        assert collector.write_points(status_lines(rules.statuses(now_ms), now_ms))
        expected = sum(len(s) for s in samples.values())
        fields = {"iface": "up", "host": "cpu_pct", "reach": "up", "netdev": "up",
                  "netdev_if": "up", "ap": "online", "speedtest": "down_mbps", "av": "online",
                  "wifi": "rssi_dbm", "agent": "rss_mb"}
        wait_until(lambda: sum(_count(services.influx_url, db, m, f)
                               for m, f in fields.items()) == expected, 60,
                   f"{expected} samples in InfluxDB")
        wait_until(lambda: _count(services.influx_url, db, "agent_status", "online")
                   == len(samples), 20, "agent_status points")
        wait_until(lambda: _count(services.influx_url, db, "school_info", "classes")
                   >= len(sim.SCHOOLS), 20, "school_info points")
        wait_until(lambda: _count(services.influx_url, db, "collector_stats", "queue_bytes")
                   >= 2, 20, "two collector_stats points")
        yield District(services.influx_url, db)
    finally:
        feed.stop()
        collector.stop()
        influx_query(services.influx_url, "", f'DROP DATABASE "{db}"')


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _panels(board: Path) -> list[dict[str, Any]]:
    return [p for p in json.loads(board.read_text())["panels"] if p["type"] != "row"]


def _has_values(series: list[dict[str, Any]]) -> bool:
    return any(v is not None for s in series for row in s["values"] for v in row[1:])


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.stem)
def test_every_panel_query_returns_rows(district: District, board: Path) -> None:
    """Each target of each panel runs without error and returns at least one non-null value."""
    failures = []
    checked = 0
    for panel in _panels(board):
        for target in panel["targets"]:
            query = substitute(target["query"], VALUES, "time > now() - 3h", "5m")
            try:
                series = influx_query(district.url, district.db, query)
            except AssertionError as exc:  # influx_query asserts there is no error
                failures.append(f"{panel['title']} {target['refId']}: {exc}")
                continue
            checked += 1
            if not _has_values(series):
                failures.append(f"{panel['title']} {target['refId']}: no rows for {query}")
    assert not failures, "\n".join(failures)
    assert checked >= len(_panels(board))


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.stem)
def test_template_variables_list_the_district(district: District, board: Path) -> None:
    """The SHOW TAG VALUES of each variable returns the simulated district's values."""
    for var in json.loads(board.read_text())["templating"]["list"]:
        query = substitute(var["query"], VALUES, "", "5m")
        values = {row["value"] for row in influx_rows(district.url, district.db, query)}
        assert VALUES[var["name"]] in values or (VALUES[var["name"]] == ".*" and values), (
            var["name"], values)


def test_tier_and_target_panels_show_the_simulated_figures(district: District) -> None:
    """One school per tier, the offline agent, and the schools missing access_1000m."""
    panels = {p["title"]: p for p in _panels(JSON_DIR / "district.json")}
    tiers = {}
    for target in panels["Schools per access tier"]["targets"]:
        rows = influx_rows(district.url, district.db,
                           substitute(target["query"], VALUES, "time > now() - 3h", "5m"))
        tiers.update({k: v for r in rows for k, v in r.items() if k != "time"})
    assert tiers == {"1000M": 1, "100M": 1, "10M": 1, "4M": 1, "below 4M": 1}
    offline = influx_rows(district.url, district.db, substitute(
        panels["Agents offline"]["targets"][0]["query"], VALUES, "", "5m"))
    assert [r["agent"] for r in offline] == [sim.OFFLINE_AGENT]
    missing = influx_rows(district.url, district.db, substitute(
        panels["Schools missing targets"]["targets"][0]["query"], VALUES,
        "time > now() - 3h", "5m"))
    assert {r["school"] for r in missing if r["rule"] == "access_1000m"} == {
        s.id for s in sim.SCHOOLS if s.id != "gz-th-001"}
