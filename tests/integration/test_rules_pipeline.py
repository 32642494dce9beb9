"""Samples through real Mosquitto and the Collector (rules engine as observer) into InfluxDB 1.x,
then an evaluation pass written back and read as the ``compliance`` measurement."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from collector.config import CollectorConfig
from collector.inventory import Inventory
from collector.rules import RulesEngine, RulesSettings, load_policies
from collector.subscriber import Collector, build_writer
from common.wire import AgentIdentity, Envelope, Sample, Topics, encode_envelope
from tests.conftest import Services, influx_rows, wait_until

pytestmark = pytest.mark.integration

MINUTE = 60_000
ALL_DAY = {"timezone": "Asia/Shanghai", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
           "hours": ["00:00-24:00"]}  # every sample is a school-hour sample, whenever CI runs


def inventory() -> Inventory:
    """An urban and a rural school in d1, a teaching point in d2."""
    def school(sid: str, district: str, category: str, classes: int,
               rooms: list[str]) -> dict[str, Any]:
        return {"id": sid, "name": sid, "district": district, "category": category,
                "classes": classes, "contracted_mbps": 100, "timetable": ALL_DAY,
                "classrooms": [{"id": r} for r in rooms],
                "devices": [{"id": f"{sid}-{r}", "classroom": r, "type": "projector"}
                            for r in rooms]}

    return Inventory.model_validate({
        "districts": [{"id": "d1", "name": "one", "region": "central"},
                      {"id": "d2", "name": "two", "region": "west"}],
        "schools": [school("s-urban", "d1", "urban", 10, ["r1", "r2"]),
                    school("s-rural", "d1", "rural", 12, ["r1", "r2"]),
                    school("s-tp", "d2", "teaching_point", 3, ["r1"])],
        "agents": [{"id": f"{s}-gw", "school": s} for s in ("s-urban", "s-rural", "s-tp")],
    })


def batches(t0: int) -> dict[AgentIdentity, list[Sample]]:
    """What each gateway sends, timed before ``t0``."""
    def st(ts: int, down: float) -> Sample:
        return Sample("speedtest", ts, {"server": "http://hub:8080"},
                      {"down_mbps": down, "up_mbps": down / 2})

    def av(ts: int, device: str, room: str, online: bool) -> Sample:
        return Sample("av", ts, {"device": device, "classroom": room,
                                 "device_type": "projector"}, {"online": online})

    def reach(ts: int, up: bool) -> Sample:
        return Sample("reach", ts, {"target": "baidu", "target_role": "internet",
                                    "method": "tcp"}, {"up": up})

    urban = [st(t0 - 300 * MINUTE, 60.0), st(t0 - 200 * MINUTE, 95.0),
             st(t0 - 100 * MINUTE, 120.0), reach(t0 - 2 * MINUTE, True)]
    urban += [av(t0 - (20 - i) * MINUTE, "s-urban-r1", "r1", True) for i in range(10)]
    urban += [av(t0 - (20 - i) * MINUTE, "s-urban-r2", "r2", i % 2 == 0) for i in range(10)]
    rural = [st(t0 - 60 * MINUTE, 50.0), reach(t0 - 3 * MINUTE, True),
             reach(t0 - 2 * MINUTE, False)]
    rural += [av(t0 - (20 - i) * MINUTE, "s-rural-r1", "r1", True) for i in range(10)]
    tp = [st(t0 - 10 * MINUTE, 3.9)]
    return {AgentIdentity("d1", "s-urban", "s-urban-gw"): urban,
            AgentIdentity("d1", "s-rural", "s-rural-gw"): rural,
            AgentIdentity("d2", "s-tp", "s-tp-gw"): tp}


def publish(port: int, messages: list[tuple[str, bytes, bool]]) -> None:
    """Publish QoS 1 (retained where asked), waiting for each PUBACK."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rules-publisher",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload, retain in messages:
            client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def collector(services: Services, influx_db: str, topic_prefix: str
              ) -> Iterator[tuple[Collector, RulesEngine]]:
    """An in-process collector whose observers are a rules engine."""
    config = CollectorConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": topic_prefix,
                 "username": None, "client_id": f"rules-{topic_prefix[:11]}",
                 "session_expiry": "60s"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": influx_db},
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s"},
    })
    engine = RulesEngine(inventory(), load_policies(["cn-moe-2017", "cn-moe-13fyp",
                                                     "schoolmon-operations"]),
                         RulesSettings.model_validate({"stale_after": "15m"}))
    coll = Collector(config, build_writer(config), observers=[engine.observe],
                     status_observers=[engine.observe_status])
    coll.start()
    assert coll.connected.wait(10), "collector did not connect"
    yield coll, engine
    coll.stop()


def tp_agent_status(engine: RulesEngine) -> str | None:
    """The retained status the engine holds for the teaching point's gateway."""
    status = engine.school_status("s-tp")
    return status.agents[0].status if status is not None else None


def compliance(url: str, db: str, where: str) -> dict[tuple[str, ...], dict[str, object]]:
    """compliance rows keyed by (rule, scope, district, school, classroom)."""
    rows = influx_rows(url, db, f"SELECT * FROM compliance WHERE {where}")
    return {(str(r["rule"]), str(r["scope"]), str(r["district"]), str(r.get("school") or ""),
             str(r.get("classroom") or "")): r for r in rows}


def test_samples_to_compliance_points(services: Services, influx_db: str, topic_prefix: str,
                                      collector: tuple[Collector, RulesEngine]) -> None:
    """Published samples are stored, observed, evaluated; compliance points hold the figures."""
    coll, engine = collector
    t0 = int(time.time() * 1000)
    topics = Topics(topic_prefix)
    sent = batches(t0)
    tp_gw = AgentIdentity("d2", "s-tp", "s-tp-gw")
    # The teaching point's retained "online": it reaches the collector when its subscriptions
    # are in place (the data subscription is made first), so seeing it means data can flow.
    publish(services.mqtt_port, [(topics.status(tp_gw), b"online", True)])
    wait_until(lambda: tp_agent_status(engine) == "online", 10, "online status observed")
    publish(services.mqtt_port, [
        (topics.data(who), encode_envelope(Envelope(who.district, who.school, who.agent, 1, t0,
                                                    samples)), False)
        for who, samples in sent.items()])
    total = sum(len(s) for s in sent.values())
    wait_until(lambda: engine.observed_samples == total, 20, "engine observed every sample")
    publish(services.mqtt_port, [(topics.status(tp_gw), b"offline", True)])  # its last will
    wait_until(lambda: tp_agent_status(engine) == "offline", 10, "offline status observed")
    stored = influx_rows(services.influx_url, influx_db, "SELECT COUNT(down_mbps) FROM speedtest")
    assert stored[0]["count"] == 5  # observers run only after the write

    now = int(time.time() * 1000)
    lines = engine.pass_lines(now)
    assert coll.write_points(lines)
    rows = compliance(services.influx_url, influx_db, "\"policy\" = 'cn-moe-2017'")

    access = {k[3]: r for k, r in rows.items() if k[0] == "access_10m" and k[1] == "school"}
    assert {s: (r["value"], r["met"]) for s, r in access.items()} == {
        "s-urban": (120.0, True), "s-rural": (50.0, True), "s-tp": (3.9, False)}
    share_d1 = rows[("access_10m", "district_share", "d1", "", "")]
    share_d2 = rows[("access_10m", "district_share", "d2", "", "")]
    assert (share_d1["value"], share_d1["target"], share_d1["met"], share_d1["schools"]) == (
        100.0, 70.0, True, 2.0)
    assert (share_d2["value"], share_d2["met"]) == (0.0, False)
    assert share_d1["time"] == now

    rooms = {(k[3], k[4]): (r["value"], r["state"]) for k, r in rows.items()
             if k[0] == "multimedia_ratio" and k[1] == "classroom"}
    # a projector that sent nothing is no data (unequipped rooms: test_compliance_by_hand.py)
    assert rooms == {("s-urban", "r1"): (100.0, "ok"), ("s-urban", "r2"): (50.0, "ok"),
                     ("s-rural", "r1"): (100.0, "ok"), ("s-rural", "r2"): (None, "no_data"),
                     ("s-tp", "r1"): (None, "no_data")}
    mm = rows[("multimedia_ratio", "district_share", "d1", "", "")]
    assert mm["value"] == pytest.approx(200 / 3)
    assert (mm["classrooms"], mm["classrooms_met"], mm["classrooms_no_data"]) == (3.0, 2.0, 1.0)

    internet = {k[3]: r["value"] for k, r in rows.items()
                if k[0] == "internet_connected" and k[1] == "school"}
    # tp only ran a speed test to the district's server: the education network, not internet
    assert internet == {"s-urban": 1.0, "s-rural": 0.0, "s-tp": None}
    ops = compliance(services.influx_url, influx_db,
                     "\"policy\" = 'schoolmon-operations' AND scope = 'school'")
    fresh = {k[3]: r["value"] for k, r in ops.items() if k[0] == "agents_reporting"}
    assert fresh == {"s-urban": 100.0, "s-rural": 100.0, "s-tp": 0.0}
    edu = {k[3]: r["value"] for k, r in ops.items() if k[0] == "edu_network_up"}
    # tp's speed test 10 min ago; the others' tests are older than rules.recent (30 min)
    assert edu == {"s-urban": None, "s-rural": None, "s-tp": 1.0}

    fyp = compliance(services.influx_url, influx_db,
                     "\"policy\" = 'cn-moe-13fyp' AND scope = 'school'")
    assert {(k[0], k[3]): (round(float(str(r["value"])), 3), r["met"]) for k, r in fyp.items()
            if r["state"] == "ok"} == {
        ("per_class_urban", "s-urban"): (12.0, True),
        ("per_class_rural", "s-rural"): (4.167, False),
        ("teaching_point", "s-tp"): (3.9, True),
        ("broadband_schools", "s-urban"): (120.0, True),
        ("broadband_schools", "s-rural"): (50.0, True),
        ("broadband_teaching_points", "s-tp"): (3.9, True)}

    status = influx_rows(services.influx_url, influx_db,
                         "SELECT tier_mbps, access_mbps FROM school_status GROUP BY school")
    assert {r["school"]: r["tier_mbps"] for r in status} == {
        "s-urban": 100.0, "s-rural": 10.0, "s-tp": 4.0}
