"""Alert conditions from samples and statuses (ConditionTracker), one condition at a time."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from collector.alerts.model import AlertKey, Evaluation
from collector.alerts.schooltime import Directory
from collector.alerts.settings import AlertRulesSettings
from collector.alerts.tracker import ConditionTracker
from collector.inventory import Inventory
from common.wire import AgentIdentity, FieldValue, Sample

SH = ZoneInfo("Asia/Shanghai")
NINE = int(dt.datetime(2026, 5, 12, 9, 0, tzinfo=SH).timestamp() * 1000)  # Tuesday, in class
EVENING = int(dt.datetime(2026, 5, 12, 20, 0, tzinfo=SH).timestamp() * 1000)
MIN = 60_000
GW = AgentIdentity("d", "s1", "s1-gw")
PC = AgentIdentity("d", "s1", "s1-pc1")
TP = AgentIdentity("d", "tp1", "tp1-gw")


def tracker(started_ms: int = NINE, **rules: Any) -> ConditionTracker:
    """A tracker over an urban school s1 (gateway + classroom PC) and a teaching point."""
    inventory = Inventory.model_validate({
        "districts": [{"id": "d", "name": "D"}],
        "schools": [
            {"id": "s1", "name": "S1", "district": "d", "category": "urban", "classes": 10,
             "classrooms": [{"id": "101"}]},
            {"id": "tp1", "name": "TP1", "district": "d", "category": "teaching_point",
             "classes": 2},
        ],
        "agents": [{"id": "s1-gw", "school": "s1"},
                   {"id": "s1-pc1", "school": "s1", "role": "classroom_pc", "classroom": "101"},
                   {"id": "tp1-gw", "school": "tp1"}],
    })
    settings = AlertRulesSettings.model_validate(rules)
    return ConditionTracker(settings, Directory(inventory), started_ms)


def firing(evaluation: Evaluation, name: str) -> dict[str, Any]:
    """subject -> alert of one name."""
    return {a.key.subject: a for a in evaluation.firing if a.name == name}


def av(ts: int, device: str = "proj-101", **fields: FieldValue) -> Sample:
    """An av sample."""
    return Sample("av", ts, {"device": device, "classroom": "101", "device_type": "projector"},
                  fields)


def test_last_will_of_a_gateway_fires_at_once_any_time_and_online_clears() -> None:
    """A gateway's "offline" fires even at night; "online" clears it."""
    t = tracker(EVENING)
    t.observe_status(GW, "offline", EVENING)
    alert = firing(t.evaluate(EVENING + 1000), "agent_offline")["s1-gw"]
    assert alert.severity == "critical" and alert.since_ms == EVENING
    assert alert.figures["reason"] == "last_will" and alert.labels["role"] == "gateway"
    t.observe_status(GW, "online", EVENING + 5000)
    ev = t.evaluate(EVENING + 6000)
    assert firing(ev, "agent_offline") == {}
    assert AlertKey("agent_offline", "s1", "s1-gw") in ev.cleared


def test_a_batch_stored_after_the_last_will_does_not_end_it() -> None:
    """The writer thread lags: data observed after the will was sent before it."""
    t = tracker(NINE)
    t.observe_status(GW, "offline", NINE)
    t.observe(GW, [Sample("host", NINE - 1000, {}, {"cpu_pct": 1.0})], NINE + 500)
    assert "s1-gw" in firing(t.evaluate(NINE + 1000), "agent_offline")
    t.observe_status(GW, "online", NINE + 60_000)
    assert firing(t.evaluate(NINE + 61_000), "agent_offline") == {}


def test_classroom_pc_switched_off_in_the_evening_is_not_an_alert() -> None:
    """A classroom PC's "offline" outside school hours does not fire; in class it does."""
    t = tracker(EVENING)
    t.observe(GW, [Sample("host", EVENING, {}, {"cpu_pct": 1.0})], EVENING)
    t.observe_status(PC, "offline", EVENING)
    assert firing(t.evaluate(EVENING + MIN), "agent_offline") == {}
    t2 = tracker(NINE)
    t2.observe_status(PC, "offline", NINE + MIN)
    alert = firing(t2.evaluate(NINE + 2 * MIN), "agent_offline")["s1-pc1"]
    assert alert.severity == "warning"


def test_no_data_for_offline_after_in_school_hours_fires_and_data_clears() -> None:
    """Silent for 10 min in class: offline (since the last data); data ends it."""
    t = tracker(NINE - 60 * MIN)
    for who in (GW, PC, TP):
        t.observe(who, [Sample("host", NINE, {}, {"cpu_pct": 1.0})], NINE)
    assert firing(t.evaluate(NINE + 9 * MIN), "agent_offline") == {}
    t.observe(GW, [Sample("host", NINE + 9 * MIN, {}, {"cpu_pct": 1.0})], NINE + 9 * MIN)
    t.observe(TP, [Sample("host", NINE + 9 * MIN, {}, {"cpu_pct": 1.0})], NINE + 9 * MIN)
    alerts = firing(t.evaluate(NINE + 10 * MIN), "agent_offline")
    assert set(alerts) == {"s1-pc1"}
    assert alerts["s1-pc1"].since_ms == NINE and alerts["s1-pc1"].figures["reason"] == "no_data"
    t.observe(PC, [Sample("host", NINE + 11 * MIN, {}, {"cpu_pct": 1.0})], NINE + 11 * MIN)
    ev = t.evaluate(NINE + 11 * MIN)
    assert "s1-pc1" not in firing(ev, "agent_offline")
    assert AlertKey("agent_offline", "s1", "s1-pc1") in ev.cleared


def test_collector_hearing_nobody_is_not_a_storm_of_offline_agents() -> None:
    """No data from any agent for offline_after: the collector is deaf, no school is blamed."""
    t = tracker(NINE)
    assert firing(t.evaluate(NINE + 30 * MIN), "agent_offline") == {}
    t.observe(GW, [Sample("host", NINE + 30 * MIN, {}, {"cpu_pct": 1.0})], NINE + 30 * MIN)
    assert set(firing(t.evaluate(NINE + 31 * MIN), "agent_offline")) == {"s1-pc1", "tp1-gw"}


def test_silence_counts_only_inside_the_school_period() -> None:
    """Last data yesterday evening: at 07:35 the agent is not yet 10 min overdue."""
    morning = int(dt.datetime(2026, 5, 13, 7, 35, tzinfo=SH).timestamp() * 1000)
    t = tracker(EVENING)
    for who in (GW, PC, TP):
        t.observe(who, [Sample("host", EVENING, {}, {"cpu_pct": 1.0})], EVENING)
    assert firing(t.evaluate(morning), "agent_offline") == {}
    t.observe(TP, [Sample("host", morning, {}, {"cpu_pct": 1.0})], morning)
    assert set(firing(t.evaluate(morning + 5 * MIN), "agent_offline")) == {"s1-gw", "s1-pc1"}
    assert firing(t.evaluate(morning + 13 * 60 * MIN), "agent_offline") != {}  # until data


def reach(ts: int, target: str, role: str, up: bool) -> Sample:
    """A reach sample."""
    return Sample("reach", ts, {"target": target, "target_role": role, "method": "tcp"},
                  {"up": up})


def test_internet_down_when_every_uplink_target_is_down() -> None:
    """Internet and district targets all down: firing; one answering: clear."""
    t = tracker()
    t.observe(GW, [reach(NINE, "internet", "internet", False),
                   reach(NINE, "hub", "district", True),
                   reach(NINE, "gw", "gateway", False)], NINE)
    assert firing(t.evaluate(NINE), "internet_down") == {}
    t.observe(GW, [reach(NINE + MIN, "internet", "internet", False),
                   reach(NINE + MIN, "hub", "district", False)], NINE + MIN)
    alert = firing(t.evaluate(NINE + MIN), "internet_down")[""]
    assert alert.since_ms == NINE + MIN and alert.figures == {"targets_down": "hub, internet"}
    # A backlog sample older than what we know changes nothing.
    t.observe(GW, [reach(NINE - MIN, "hub", "district", True)], NINE + MIN)
    assert firing(t.evaluate(NINE + MIN), "internet_down") != {}
    t.observe(GW, [reach(NINE + 2 * MIN, "hub", "district", True)], NINE + 2 * MIN)
    ev = t.evaluate(NINE + 2 * MIN)
    assert firing(ev, "internet_down") == {}
    assert AlertKey("internet_down", "s1") in ev.cleared


def test_wan_link_down_is_internet_down() -> None:
    """The WAN interface down (no reach targets configured) fires internet_down."""
    t = tracker()
    t.observe(GW, [Sample("iface", NINE, {"iface": "eth0", "role": "wan"}, {"up": False}),
                   Sample("iface", NINE, {"iface": "eth1", "role": "lan"}, {"up": True})], NINE)
    assert firing(t.evaluate(NINE), "internet_down")[""].figures == {"wan_down": "eth0"}


def speed(ts: int, mbps: float) -> Sample:
    """A speedtest sample."""
    return Sample("speedtest", ts, {"server": "http://hub"}, {"down_mbps": mbps})


def test_bandwidth_below_the_category_target_for_three_tests() -> None:
    """Urban target 100: three tests below fire; a teaching point at 5 Mbps is fine (4)."""
    t = tracker()
    t.observe(TP, [speed(NINE, 5.0), speed(NINE + 1, 5.0), speed(NINE + 2, 5.0)], NINE)
    t.observe(GW, [speed(NINE, 80.0), speed(NINE + MIN, 120.0), speed(NINE + 2 * MIN, 90.0),
                   speed(NINE + 3 * MIN, 95.0)], NINE)
    assert firing(t.evaluate(NINE), "bandwidth_low") == {}
    t.observe(GW, [speed(NINE + 4 * MIN, 60.5)], NINE)
    alert = firing(t.evaluate(NINE), "bandwidth_low")[""]
    assert alert.since_ms == NINE + 2 * MIN
    assert alert.figures == {"down_mbps": 60.5, "target_mbps": 100.0, "tests_below": 3.0}
    t.observe(GW, [speed(NINE + 5 * MIN, 100.0)], NINE)
    ev = t.evaluate(NINE)
    assert firing(ev, "bandwidth_low") == {} and AlertKey("bandwidth_low", "s1") in ev.cleared


def test_configured_targets_and_test_count() -> None:
    """bandwidth_target_mbps and bandwidth_consecutive_tests come from the settings."""
    t = tracker(bandwidth_target_mbps={"teaching_point": 8}, bandwidth_consecutive_tests=1)
    t.observe(TP, [speed(NINE, 5.0)], NINE)
    assert firing(t.evaluate(NINE), "bandwidth_low")[""].figures["target_mbps"] == 8.0


def test_device_down_after_the_grace_in_school_hours_only() -> None:
    """Offline 10 min in class fires; offline in the evening never starts the clock."""
    t = tracker()
    t.observe(PC, [av(EVENING, online=False), av(EVENING + 20 * MIN, online=False)], EVENING)
    assert firing(t.evaluate(EVENING), "device_down") == {}
    t2 = tracker()
    t2.observe(PC, [av(NINE, online=False)], NINE)
    t2.observe(PC, [av(NINE + 9 * MIN, online=False)], NINE)
    assert firing(t2.evaluate(NINE + 9 * MIN), "device_down") == {}
    t2.observe(PC, [av(NINE + 10 * MIN, online=False)], NINE)
    alert = firing(t2.evaluate(NINE + 10 * MIN), "device_down")["proj-101"]
    assert alert.since_ms == NINE and alert.severity == "error"
    assert alert.labels == {"device": "proj-101", "classroom": "101",
                            "device_type": "projector", "agent": "s1-pc1"}
    t2.observe(PC, [av(NINE + 11 * MIN, online=True)], NINE)
    ev = t2.evaluate(NINE + 11 * MIN)
    assert firing(ev, "device_down") == {}
    assert AlertKey("device_down", "s1", "proj-101") in ev.cleared


def test_projector_error_levels_and_lamp_hours() -> None:
    """ERST 1 is a warning, 2 an error; all 0 clears; lamp hours over the limit fire."""
    t = tracker(lamp_hours_max=2000)
    t.observe(PC, [av(NINE, online=True, err_fan=0, err_lamp=1, err_temp=0, lamp_hours=1999)],
              NINE)
    alert = firing(t.evaluate(NINE), "projector_error")["proj-101"]
    assert alert.severity == "warning" and alert.figures == {"err_lamp": "warning"}
    assert firing(t.evaluate(NINE), "lamp_hours") == {}
    t.observe(PC, [av(NINE + MIN, online=True, err_fan=2, err_lamp=1, lamp_hours=2001)], NINE)
    ev = t.evaluate(NINE)
    alert = firing(ev, "projector_error")["proj-101"]
    assert alert.severity == "error" and alert.since_ms == NINE
    assert alert.figures == {"err_fan": "error", "err_lamp": "warning"}
    assert firing(ev, "lamp_hours")["proj-101"].figures == {"lamp_hours": 2001.0,
                                                             "lamp_hours_max": 2000.0}
    t.observe(PC, [av(NINE + 2 * MIN, online=False)], NINE)  # no ERST: nothing known
    assert "proj-101" in firing(t.evaluate(NINE), "projector_error")
    t.observe(PC, [av(NINE + 3 * MIN, online=True, err_fan=0, err_lamp=0, lamp_hours=3)], NINE)
    ev = t.evaluate(NINE)
    assert firing(ev, "projector_error") == {} and firing(ev, "lamp_hours") == {}
    assert {AlertKey("projector_error", "s1", "proj-101"),
            AlertKey("lamp_hours", "s1", "proj-101")} <= ev.cleared


def wifi(ts: int, bssid: str, rssi: float, ssid: str = "School") -> Sample:
    """A wifi sample of classroom 101."""
    return Sample("wifi", ts, {"classroom": "101", "ssid": ssid, "bssid": bssid},
                  {"rssi_dbm": rssi})


def test_wifi_poor_when_the_best_school_ap_stays_below_threshold() -> None:
    """Best of the school SSIDs under -75 dBm for 15 min fires; a guest SSID does not count."""
    t = tracker(school_ssids=["School"])
    for i in range(4):
        ts = NINE + i * 5 * MIN
        t.observe(PC, [wifi(ts, "aa", -80.0), wifi(ts, "bb", -77.0),
                       wifi(ts, "cc", -40.0, ssid="Guest")], ts)
    alert = firing(t.evaluate(NINE + 15 * MIN), "wifi_poor")["101"]
    assert alert.since_ms == NINE
    assert alert.figures == {"best_rssi_dbm": -77.0, "threshold_dbm": -75.0, "bssid": "bb"}
    t.observe(PC, [wifi(NINE + 20 * MIN, "aa", -70.0)], NINE)
    ev = t.evaluate(NINE + 20 * MIN)
    assert firing(ev, "wifi_poor") == {} and AlertKey("wifi_poor", "s1", "101") in ev.cleared


def agent_health(ts: int, dropped: int) -> Sample:
    """The agent's own sample."""
    return Sample("agent", ts, {}, {"rss_mb": 30.0, "dropped_total": dropped})


def test_spool_dropping_while_dropped_total_rises() -> None:
    """An increase fires; an hour without one clears; a lower value is a new baseline."""
    t = tracker()
    t.observe(GW, [agent_health(NINE, 100)], NINE)
    assert firing(t.evaluate(NINE), "spool_dropping") == {}
    t.observe(GW, [agent_health(NINE + MIN, 150)], NINE + MIN)
    alert = firing(t.evaluate(NINE + MIN), "spool_dropping")["s1-gw"]
    assert alert.figures == {"dropped": 50.0, "dropped_total": 150.0}
    assert alert.since_ms == NINE + MIN
    t.observe(GW, [agent_health(NINE + 30 * MIN, 150)], NINE + 30 * MIN)
    assert "s1-gw" in firing(t.evaluate(NINE + 30 * MIN), "spool_dropping")
    ev = t.evaluate(NINE + 62 * MIN)
    assert firing(ev, "spool_dropping") == {}
    assert AlertKey("spool_dropping", "s1", "s1-gw") in ev.cleared
    t.observe(GW, [agent_health(NINE + 63 * MIN, 0)], NINE + 63 * MIN)  # new spool file
    assert firing(t.evaluate(NINE + 63 * MIN), "spool_dropping") == {}


def test_watched_keys_report_health_without_a_transition() -> None:
    """After a restart the tracker reports healthy evidence for alerts on disk only."""
    t = tracker()
    t.watch({AlertKey("device_down", "s1", "proj-101")})
    t.observe(PC, [av(NINE, online=True), av(NINE, device="panel-9", online=True)], NINE)
    assert t.evaluate(NINE).cleared == {AlertKey("device_down", "s1", "proj-101")}
    assert t.evaluate(NINE).cleared == set()  # drained


def test_disabled_alerts_do_not_fire() -> None:
    """``enabled`` limits the alert names."""
    t = tracker(enabled=["device_down"])
    t.observe_status(GW, "offline", NINE)
    t.observe(GW, [reach(NINE, "internet", "internet", False)], NINE)
    assert t.evaluate(NINE).firing == []
