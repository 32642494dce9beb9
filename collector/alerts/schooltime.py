"""Schools as the alerts see them: names, categories, time zones and school hours."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from collector.inventory import Inventory
from common.timetable import SchoolCalendar, SchoolHours, Timetable


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


class Directory:
    """Lookups into the inventory; unknown schools and agents get safe defaults."""

    def __init__(self, inventory: Inventory, default_timetable: Timetable | None = None) -> None:
        districts = {d.id: d.name for d in inventory.districts}
        # The rules' resolver and default (rules.default_timetable): rules and alerts agree.
        hours = SchoolHours(default_timetable)
        self._schools = {
            s.id: SchoolInfo(s.id, s.name, s.district, districts.get(s.district, s.district),
                             s.category, hours.calendar(s))
            for s in inventory.schools
        }
        self._agents = {
            a.id: AgentInfo(a.id, a.school, self._schools[a.school].district, a.role,
                            a.classroom)
            for a in inventory.agents
            if a.school in self._schools  # not a network node's agent (inventory networks:)
        }
        self._default_calendar = hours.calendar(None)
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
