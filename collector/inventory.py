"""inventory.yaml: districts, schools, classrooms, devices and agents, with references checked."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, model_validator

from common.config import Identifier, Strict, load_model, require_unique
from common.timetable import Timetable, TimeZoneName
from common.vocab import AgentRole, DeviceType, NetworkLinkRole

Region = Literal["east", "central", "west"]  # 东部 / 中部 / 西部, as the national plans divide
SchoolLevel = Literal["primary", "junior", "senior"]  # 小学 / 初中 / 高中
# Compulsory education (义务教育) is primary and junior secondary school.
COMPULSORY: Final = frozenset({"primary", "junior"})
NetworkLevel = Literal["city", "district", "province"]

# Names go into mail headers and bodies, HTML, CSV and InfluxDB tags: control characters
# (C0, C1 with U+0085), line and paragraph separators, bidi overrides and zero-width marks
# are refused at load, so a name is always one line of plain text wherever it lands.
_UNSAFE_IN_NAME: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _plain_text(value: str) -> str:
    bad = _UNSAFE_IN_NAME.search(value)
    if bad is not None:
        raise ValueError(f"contains the control or separator character U+{ord(bad.group()):04X}")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


PlainName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_plain_text)]


class District(Strict):
    """A district (区/县) that owns schools."""

    id: Identifier
    name: PlainName
    region: Region | None = None  # the schools' default region (a school may set its own)


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
    type: DeviceType
    check: Literal["pjlink", "icmp", "tcp"] = "icmp"


class School(Strict):
    """A school (or teaching point, 教学点) with what the policy rules need."""

    id: Identifier
    name: PlainName
    district: Identifier
    category: Literal["urban", "rural", "teaching_point"]
    ownership: Literal["public", "private"] = "public"
    level: Literal["primary", "secondary", "combined"] = "primary"
    # What the policy texts distinguish (docs/policies.md, "Who a rule applies to"):
    levels: list[SchoolLevel] | None = None  # taught here; None: unknown
    region: Region | None = None  # None: the district's region
    # 有条件的/具备条件的: true unless the district says this school lacks the conditions.
    qualified: bool = True
    demonstration: bool = False  # one of the province's listed demonstration schools (示范学校)
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
        require_unique(rooms, "classroom id")
        require_unique([d.id for d in self.devices], "device id")
        for i, dev in enumerate(self.devices):
            if dev.classroom not in rooms:
                raise ValueError(f"devices.{i}.classroom: unknown classroom {dev.classroom!r}")
        return self


class NetworkLink(Strict):
    """A port of a network node's switch or router that a policy names (by SNMP/SSH ifname)."""

    device: PlainName  # the netdev_if ``device`` tag
    ifname: PlainName
    role: NetworkLinkRole
    peer: PlainName | None = None  # district_link: the district at the other end


class Network(Strict):
    """A network node (the city or province education network, a district hub) and its links.

    Its agents are listed under ``agents:`` with ``school:`` set to the node's id; rules with
    ``applies_to: {network: [...]}`` are evaluated on the node's own samples, not on a school.
    """

    id: Identifier
    name: PlainName
    district: Identifier  # where its agents publish (topic and broker ACL)
    level: NetworkLevel
    links: list[NetworkLink] = []


class AgentEntry(Strict):
    """An agent and the school (or network node) it reports for."""

    id: Identifier
    school: Identifier
    role: AgentRole = "gateway"
    classroom: Identifier | None = None


class Inventory(Strict):
    """The whole inventory.yaml."""

    districts: list[District]
    schools: list[School] = []
    networks: list[Network] = []
    agents: list[AgentEntry] = []

    @model_validator(mode="after")
    def _references(self) -> Inventory:
        require_unique([d.id for d in self.districts], "district id")
        require_unique([s.id for s in self.schools], "school id")
        require_unique([s.id for s in self.schools] + [n.id for n in self.networks],
                       "school or network id")
        require_unique([a.id for a in self.agents], "agent id")
        districts = {d.id for d in self.districts}
        schools = {s.id: s for s in self.schools}
        for i, school in enumerate(self.schools):
            if school.district not in districts:
                raise ValueError(f"schools.{i}.district: unknown district {school.district!r}")
        for i, net in enumerate(self.networks):
            if net.district not in districts:
                raise ValueError(f"networks.{i}.district: unknown district {net.district!r}")
        nets = {n.id for n in self.networks}
        for i, agent in enumerate(self.agents):
            if agent.school in nets:
                if agent.classroom is not None:
                    raise ValueError(f"agents.{i}.classroom: a network node has no classrooms")
                continue
            if agent.school not in schools:
                raise ValueError(f"agents.{i}.school: unknown school {agent.school!r}")
            rooms = {c.id for c in schools[agent.school].classrooms}
            if agent.classroom is not None and agent.classroom not in rooms:
                raise ValueError(f"agents.{i}.classroom: unknown classroom {agent.classroom!r}")
        return self

    def school(self, school_id: str) -> School | None:
        """The school with this id."""
        return next((s for s in self.schools if s.id == school_id), None)

    def node_district(self, node_id: str) -> str | None:
        """The district of a school or network node (where its agents publish)."""
        nodes: list[School | Network] = [*self.schools, *self.networks]
        return next((n.district for n in nodes if n.id == node_id), None)

    def matching_districts(self, pattern: str) -> list[str]:
        """Ids of the districts an id or fnmatch glob ("gz-*") names, inventory order."""
        return [d.id for d in self.districts if fnmatch.fnmatchcase(d.id, pattern)]

    def restricted_to(self, patterns: Sequence[str]) -> Inventory:
        """The part of the inventory in the districts the patterns name (a collector's shard).

        Raises UnmatchedDistrictError for a pattern that names no district: a typo would otherwise
        leave a shard silently empty.
        """
        owned: set[str] = set()
        for i, pattern in enumerate(patterns):
            ids = self.matching_districts(pattern)
            if not ids:
                raise UnmatchedDistrictError(i, pattern)
            owned.update(ids)
        schools = [s for s in self.schools if s.district in owned]
        nodes = {s.id for s in schools} | {n.id for n in self.networks if n.district in owned}
        return Inventory.model_construct(
            districts=[d for d in self.districts if d.id in owned], schools=schools,
            networks=[n for n in self.networks if n.district in owned],
            agents=[a for a in self.agents if a.school in nodes])

    def region_of(self, school: School) -> Region | None:
        """The school's region, else its district's."""
        if school.region is not None:
            return school.region
        return next((d.region for d in self.districts if d.id == school.district), None)


class UnmatchedDistrictError(ValueError):
    """A ``districts:`` pattern that names no district of the inventory."""

    def __init__(self, index: int, pattern: str) -> None:
        super().__init__(f"{pattern!r} matches no district of the inventory")
        self.index = index
        self.pattern = pattern


def load_inventory(path: str | Path, environ: Mapping[str, str] | None = None) -> Inventory:
    """Read and validate inventory.yaml; raises ConfigError."""
    return load_model(Inventory, path, environ=environ)
