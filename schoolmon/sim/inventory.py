"""The inventory of a simulated district (collector/inventory.py model), and its YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from collector.inventory import AgentEntry, Classroom, Device, District, Inventory, School
from schoolmon.sim.plan import SimulationPlan


def plan_inventory(plan: SimulationPlan) -> Inventory:
    """Districts, schools, classrooms, devices and agents exactly as the simulator runs them."""
    timetable = plan.spec.timetable
    schools = [
        School(
            id=s.id, name=s.name, district=s.district, category=s.category,
            ownership=s.ownership,
            level=s.level,
            # a county's secondary school is a junior middle school (初中): compulsory
            levels=["primary"] if s.level == "primary" else ["junior"],
            classes=s.classes, students=s.students, contracted_mbps=s.contracted_mbps,
            timezone=timetable.timezone, timetable=timetable,
            classrooms=[Classroom(id=c.id, ordinary=c.ordinary) for c in s.classrooms],
            devices=[Device(id=c.device_id, classroom=c.id,
                            type=c.device_type,
                            check="pjlink" if c.device_type == "projector" else "icmp")
                     for c in s.classrooms])
        for s in plan.schools]
    agents = []
    for s in plan.schools:
        agents.append(AgentEntry(id=s.gateway_agent, school=s.id, role="gateway"))
        agents.extend(AgentEntry(id=c.agent, school=s.id, role="classroom_pc", classroom=c.id)
                      for c in s.classrooms if c.agent)
    districts = [District(id=d, name=f"模拟区县 {d}", region=plan.spec.region)
                 for d in plan.districts]
    return Inventory(districts=districts, schools=schools, agents=agents)


def inventory_yaml(inventory: Inventory) -> str:
    """The inventory as YAML that ``schoolmon check-config`` accepts."""
    data: dict[str, Any] = inventory.model_dump(mode="json", exclude_none=True)
    header = ("# Inventory of a simulated district, written by `schoolmon simulate`.\n"
              "# Validate with: schoolmon check-config THIS_FILE\n")
    return header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


def write_inventory(inventory: Inventory, path: str | Path) -> None:
    """Write the inventory YAML file."""
    Path(path).write_text(inventory_yaml(inventory), encoding="utf-8")
