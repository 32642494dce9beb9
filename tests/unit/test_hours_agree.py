"""Rules, alerts and agents agree on school hours, default timetable included (issue 15).

The district's ``rules.default_timetable`` is 13:00-17:00: at 09:00 on a Tuesday no one may call
it school time, at 14:00 everyone must. Before one resolver, the alerts used their own default
(07:30-12:00, 13:30-17:30) and fired for a classroom PC switched off at 09:00.
"""

from __future__ import annotations

import datetime as dt

from collector.alerts.schooltime import Directory
from collector.alerts.settings import AlertRulesSettings
from collector.alerts.tracker import ConditionTracker
from common.timetable import SchoolHours, Timetable
from common.wire import AgentIdentity
from schoolmon.sim.timeline import is_school_day, school_ticks
from tests.rules_fixtures import HOUR, MINUTE, at, av, engine, inventory, school

AFTERNOON = Timetable(hours=["13:00-17:00"])
NINE, TWO = at(1, 9), at(1, 14)  # Tuesday, Shanghai time
PC = AgentIdentity("d1", "s1", "s1-pc1")
AGENTS = [{"id": "s1-gw", "school": "s1"},
          {"id": "s1-pc1", "school": "s1", "role": "classroom_pc", "classroom": "r1"}]


def test_rules_count_only_the_default_afternoon() -> None:
    """Projector off every 10 min of the morning, on in the afternoon: uptime 100 %."""
    inv = inventory(school("s1"), agents=AGENTS)
    eng, _ = engine(inv, {"id": "mm", "metric": "multimedia_uptime", "scope": "classroom",
                          "threshold": 80}, now_ms=at(1, 18),
                    default_timetable=AFTERNOON.model_dump())
    samples = [av(ts, "s1-p1", "r1", online=ts >= at(1, 13))
               for ts in range(at(1, 8), at(1, 17), 10 * MINUTE)]
    eng.observe(AgentIdentity("d1", "s1", "s1-gw"), samples)
    room = next(r for r in eng.evaluate() if r.classroom == "r1")
    assert (room.value, room.met) == (100.0, True)  # 08:00-12:50 not counted


def test_alerts_follow_the_rules_default() -> None:
    """A classroom PC's "offline" at 09:00 is outside school hours; at 14:00 it fires."""
    inv = inventory(school("s1"), agents=AGENTS)
    directory = Directory(inv, AFTERNOON)
    calendar = directory.school("s1").calendar
    assert not calendar.is_school_time(NINE) and calendar.is_school_time(TWO)
    assert not directory.school("unknown").calendar.is_school_time(NINE)
    morning = ConditionTracker(AlertRulesSettings(), directory, NINE - HOUR)
    morning.observe_status(PC, "offline", NINE)
    assert not [a for a in morning.evaluate(NINE + MINUTE).firing if a.name == "agent_offline"]
    afternoon = ConditionTracker(AlertRulesSettings(), directory, TWO - HOUR)
    afternoon.observe_status(PC, "offline", TWO)
    fired = [a for a in afternoon.evaluate(TWO + MINUTE).firing if a.name == "agent_offline"]
    assert [a.key.subject for a in fired] == ["s1-pc1"]


def test_rules_alerts_and_agents_give_the_same_answer_all_week() -> None:
    """Every 15 min of a week, for a school on the default and one with its own zone."""
    inv = inventory(school("s1"), school("s2", timezone="Asia/Urumqi",
                                         timetable={"hours": ["10:00-12:00"]}))
    rules_hours = SchoolHours(AFTERNOON)
    directory = Directory(inv, AFTERNOON)
    for s in inv.schools:
        rules_cal = rules_hours.calendar(s)
        alerts_cal = directory.school(s.id).calendar
        table = rules_hours.timetable(s)  # what an agent of the school is configured with
        answers = set()
        for ts in range(at(0, 0), at(7, 0), 15 * MINUTE):
            when = dt.datetime.fromtimestamp(ts / 1000, dt.UTC)
            answer = rules_cal.is_school_time(ts)
            assert alerts_cal.is_school_time(ts) == answer == table.is_school_time(when), (s, ts)
            answers.add(answer)
        assert answers == {True, False}
    assert rules_hours.calendar(inv.schools[0]).is_school_time(TWO)
    # Urumqi is 2 h behind Shanghai: 10:00 there is 12:00 in Shanghai.
    assert rules_hours.calendar(inv.schools[1]).is_school_time(at(1, 12, 30))
    assert not rules_hours.calendar(inv.schools[1]).is_school_time(at(1, 10, 30))



def test_simulator_samples_in_the_same_hours() -> None:
    """The simulator's school-hour ticks are school time for the rules, and only those."""
    tuesday = dt.date(2026, 11, 24)
    table = Timetable(hours=["13:00-17:00"], holidays=["2026-11-25"])
    ticks = school_ticks(table, tuesday, 900)
    calendar = SchoolHours(table).calendar(None)
    assert len(ticks) == 16 and all(calendar.is_school_time(t) for t in ticks)
    assert ticks[0] == at(1, 13) and ticks[-1] == at(1, 16, 45)
    assert is_school_day(table, tuesday) and not is_school_day(table, dt.date(2026, 11, 25))
    assert school_ticks(table, dt.date(2026, 11, 25), 900) == []
