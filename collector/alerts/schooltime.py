"""Schools as the alerts see them: names, categories, time zones and school hours."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

from collector.inventory import Inventory, School
from common.timetable import Timetable, parse_day_range, parse_hours

_WEEKDAYS: Final = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class SchoolCalendar:
    """A timetable parsed once: checked for every sample, so no parsing per call."""

    def __init__(self, timetable: Timetable) -> None:
        self.zone = ZoneInfo(timetable.timezone)
        self._days = {_WEEKDAYS.index(d) for d in timetable.days}
        self._hours = sorted(parse_hours(h) for h in timetable.hours)
        self._holidays = [parse_day_range(h) for h in timetable.holidays]

    def period_start_ms(self, ts_ms: int) -> int | None:
        """Start of the school period ``ts_ms`` falls in; None outside school hours."""
        local = dt.datetime.fromtimestamp(ts_ms / 1000, self.zone)
        if local.weekday() not in self._days:
            return None
        day = local.date()
        if any(first <= day <= last for first, last in self._holidays):
            return None
        now = local.time()
        for start, end in self._hours:
            if start <= now < end:
                begin = dt.datetime.combine(day, start, tzinfo=self.zone)
                return int(begin.timestamp() * 1000)
        return None

    def is_school_time(self, ts_ms: int) -> bool:
        """True inside school hours of a school day."""
        return self.period_start_ms(ts_ms) is not None


@dataclass(frozen=True)
class SchoolInfo:
    """What the alerts need to know about a school."""

    id: str
    name: str
    district: str
    district_name: str
    category: str
    calendar: SchoolCalendar

    @property
    def zone(self) -> ZoneInfo:
        """The school's time zone (times in mails are local to the school)."""
        return self.calendar.zone


@dataclass(frozen=True)
class AgentInfo:
    """An agent of the inventory."""

    id: str
    school: str
    district: str
    role: str
    classroom: str | None


def _timetable(school: School) -> Timetable:
    if school.timetable is not None:
        return school.timetable
    return Timetable(timezone=school.timezone) if school.timezone else Timetable()


class Directory:
    """Lookups into the inventory; unknown schools and agents get safe defaults."""

    def __init__(self, inventory: Inventory) -> None:
        districts = {d.id: d.name for d in inventory.districts}
        # Most schools of a district share one timetable: parse each distinct one once.
        calendars: dict[str, SchoolCalendar] = {}

        def calendar(school: School) -> SchoolCalendar:
            timetable = _timetable(school)
            text = timetable.model_dump_json()
            if text not in calendars:
                calendars[text] = SchoolCalendar(timetable)
            return calendars[text]

        self._schools = {
            s.id: SchoolInfo(s.id, s.name, s.district, districts.get(s.district, s.district),
                             s.category, calendar(s))
            for s in inventory.schools
        }
        self._agents = {
            a.id: AgentInfo(a.id, a.school, self._schools[a.school].district, a.role,
                            a.classroom)
            for a in inventory.agents
        }
        self._default_calendar = SchoolCalendar(Timetable())
        self._unknown: dict[str, SchoolInfo] = {}

    def school(self, school_id: str, district: str = "") -> SchoolInfo:
        """The school; one not in the inventory is named by its id, urban, default timetable."""
        known = self._schools.get(school_id) or self._unknown.get(school_id)
        if known is not None:
            return known
        info = SchoolInfo(school_id, school_id, district, district, "urban",
                          self._default_calendar)
        self._unknown[school_id] = info
        return info

    def agent_role(self, agent_id: str) -> str:
        """The agent's inventory role (an agent not listed counts as a gateway)."""
        agent = self._agents.get(agent_id)
        return agent.role if agent is not None else "gateway"

    def agents(self) -> list[AgentInfo]:
        """Every agent of the inventory."""
        return list(self._agents.values())
