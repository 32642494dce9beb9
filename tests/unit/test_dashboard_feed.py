"""school_info and agent_status points for the dashboards (collector/dashboard_feed.py)."""

from __future__ import annotations

from collector.dashboard_feed import DashboardFeed, school_info_lines, status_line
from collector.inventory import Inventory
from common.wire import AgentIdentity

INVENTORY = Inventory.model_validate({
    "districts": [{"id": "gz-th", "name": "Tianhe"}],
    "schools": [
        {"id": "gz-th-001", "name": "天河 第一小学", "district": "gz-th", "category": "urban",
         "classes": 24, "contracted_mbps": 1000, "location": {"lat": 23.125, "lon": 113.361}},
        {"id": "gz-th-tp-07", "name": "Longdong", "district": "gz-th",
         "category": "teaching_point", "classes": 3},
    ],
})
WHO = AgentIdentity("gz-th", "gz-th-001", "gz-th-001-gw")


def test_school_info_lines_carry_inventory_facts() -> None:
    """Location and contract when known; the name with its space escaped as a string field."""
    lines = school_info_lines(INVENTORY, 1_700_000_000_000)
    assert lines == [
        "school_info,category=urban,district=gz-th,ownership=public,school=gz-th-001 "
        'name="天河 第一小学",classes=24.0,contracted_mbps=1000.0,lat=23.125,lon=113.361 '
        "1700000000000",
        "school_info,category=teaching_point,district=gz-th,ownership=public,"
        'school=gz-th-tp-07 name="Longdong",classes=3.0 1700000000000',
    ]


def test_status_line() -> None:
    """offline (the last will) is online=false with the state kept as text."""
    assert status_line(WHO, "offline", 5) == (
        "agent_status,agent=gz-th-001-gw,district=gz-th,school=gz-th-001 "
        'online=false,state="offline" 5')


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_feed_writes_info_when_due_and_statuses_as_they_come() -> None:
    """school_info at start and again after the interval; statuses batched; none lost."""
    written: list[list[str]] = []

    def write(lines: list[str]) -> bool:
        written.append(lines)
        return True

    clock = Clock()
    feed = DashboardFeed(write, INVENTORY, now=clock, interval=3600)
    feed.on_status(WHO, "online", 1)
    feed.on_status(WHO, "offline", 2)
    assert feed.step(wait=0) == 4
    assert [len(batch) for batch in written] == [2, 2]
    clock.t += 3599
    assert feed.step(wait=0) == 0
    clock.t += 1
    assert feed.step(wait=0) == 2
    assert written[-1][0].endswith(" 4600000")


def test_full_queue_counts_dropped_statuses_without_blocking() -> None:
    """Beyond max_queued, statuses are dropped and counted (paho's thread never waits)."""
    feed = DashboardFeed(lambda lines: True, None, max_queued=2)
    for _ in range(5):
        feed.on_status(WHO, "online", 1)
    assert feed.dropped_statuses == 3
    assert feed.step(wait=0) == 2
