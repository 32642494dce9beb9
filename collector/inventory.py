"""inventory.yaml: districts, schools, classrooms, devices and agents, with references checked."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from common.config import Identifier, Strict, load_model
from common.timetable import Timetable, TimeZoneName


class District(Strict):
    """A district (区/县) that owns schools."""

    id: Identifier
    name: str


class Location(Strict):
    """Where a school is, for the map panel."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Classroom(Strict):
    """A room; ``ordinary`` rooms count for the multimedia and Wi-Fi targets."""

    id: Identifier
    ordinary: bool = True


class Device(Strict):
    """A multimedia device (projector, interactive panel, PC) in a classroom."""

    id: Identifier
    classroom: Identifier
    type: Literal["projector", "panel", "pc", "display", "other"]
    check: Literal["pjlink", "icmp", "tcp"] = "icmp"


class School(Strict):
    """A school (or teaching point, 教学点) with what the policy rules need."""

    id: Identifier
    name: str
    district: Identifier
    category: Literal["urban", "rural", "teaching_point"]
    ownership: Literal["public", "private"] = "public"
    level: Literal["primary", "secondary", "combined"] = "primary"
    classes: int = Field(ge=1)
    students: int | None = Field(default=None, ge=0)
    contracted_mbps: float | None = Field(default=None, gt=0)
    location: Location | None = None
    timezone: TimeZoneName | None = None
    timetable: Timetable | None = None
    classrooms: list[Classroom] = []
    devices: list[Device] = []

    @model_validator(mode="after")
    def _references(self) -> School:
        rooms = [c.id for c in self.classrooms]
        _no_duplicates(rooms, "classroom")
        _no_duplicates([d.id for d in self.devices], "device")
        for i, dev in enumerate(self.devices):
            if dev.classroom not in rooms:
                raise ValueError(f"devices.{i}.classroom: unknown classroom {dev.classroom!r}")
        return self


class AgentEntry(Strict):
    """An agent and the school it reports for."""

    id: Identifier
    school: Identifier
    role: Literal["gateway", "classroom_pc", "server"] = "gateway"
    classroom: Identifier | None = None


class Inventory(Strict):
    """The whole inventory.yaml."""

    districts: list[District]
    schools: list[School] = []
    agents: list[AgentEntry] = []

    @model_validator(mode="after")
    def _references(self) -> Inventory:
        _no_duplicates([d.id for d in self.districts], "district")
        _no_duplicates([s.id for s in self.schools], "school")
        _no_duplicates([a.id for a in self.agents], "agent")
        districts = {d.id for d in self.districts}
        schools = {s.id: s for s in self.schools}
        for i, school in enumerate(self.schools):
            if school.district not in districts:
                raise ValueError(f"schools.{i}.district: unknown district {school.district!r}")
        for i, agent in enumerate(self.agents):
            if agent.school not in schools:
                raise ValueError(f"agents.{i}.school: unknown school {agent.school!r}")
            rooms = {c.id for c in schools[agent.school].classrooms}
            if agent.classroom is not None and agent.classroom not in rooms:
                raise ValueError(f"agents.{i}.classroom: unknown classroom {agent.classroom!r}")
        return self

    def school(self, school_id: str) -> School | None:
        """The school with this id."""
        return next((s for s in self.schools if s.id == school_id), None)


def _no_duplicates(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in ids:
        if value in seen:
            raise ValueError(f"duplicate {what} id {value!r}")
        seen.add(value)


def load_inventory(path: str | Path, environ: Mapping[str, str] | None = None) -> Inventory:
    """Read and validate inventory.yaml; raises ConfigError."""
    return load_model(Inventory, path, environ=environ)
