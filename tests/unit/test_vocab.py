"""One vocabulary each for roles and device types (common/vocab.py), used by every part."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.probes.av import AvDevice
from agent.probes.iface import IfaceSettings
from collector.inventory import Inventory
from collector.rules.settings import RulesSettings
from common.vocab import AGENT_ROLES, DEVICE_TYPES, INTERFACE_ROLES, TARGET_ROLES

ROOT = Path(__file__).resolve().parents[2]
# A word list spelt out again anywhere but common/vocab.py is a second definition.
LISTS = {
    "device types": re.compile(r'Literal\[\s*"projector"'),
    "interface roles": re.compile(r'Literal\[\s*"wan"'),
    "target roles": re.compile(r'Literal\[\s*"gateway",\s*"dns"'),
    "agent roles": re.compile(r'Literal\[\s*"gateway",\s*"classroom_pc"'),
    "network link roles": re.compile(r'Literal\[\s*"egress"'),
}


def test_no_second_definition_in_the_code() -> None:
    """No module but common/vocab.py spells out these lists."""
    found = []
    for folder in ("agent", "collector", "common", "schoolmon", "dashboards"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "vocab.py" and path.parent.name == "common":
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{path.relative_to(ROOT)}: {name}" for name, pattern in LISTS.items()
                      if pattern.search(text)]
    assert found == []


def inventory(device_type: str, role: str = "gateway") -> Inventory:
    """One school with one device and one agent."""
    return Inventory.model_validate({
        "districts": [{"id": "d", "name": "D"}],
        "schools": [{"id": "s", "name": "S", "district": "d", "category": "urban",
                     "classes": 1, "classrooms": [{"id": "r1"}],
                     "devices": [{"id": "x", "classroom": "r1", "type": device_type}]}],
        "agents": [{"id": "a", "school": "s", "role": role,
                    **({"classroom": "r1"} if role == "classroom_pc" else {})}]})


@pytest.mark.parametrize("device_type", sorted(DEVICE_TYPES))
def test_every_device_type_is_valid_for_agent_inventory_and_rules(device_type: str) -> None:
    """An av probe may check it, the inventory may list it, the rules may count it."""
    AvDevice.model_validate({"name": "x", "classroom": "r1", "device_type": device_type,
                             "host": "10.0.0.9", "method": "icmp"})
    assert inventory(device_type).schools[0].devices[0].type == device_type
    assert RulesSettings(multimedia_types=[device_type]).multimedia_types == [device_type]


def test_unknown_words_are_refused_everywhere() -> None:
    """"beamer" is no device type, "router" no agent role, "uplink" no interface role."""
    with pytest.raises(ValidationError):
        AvDevice.model_validate({"name": "x", "classroom": "r1", "device_type": "beamer",
                                 "host": "10.0.0.9", "method": "icmp"})
    with pytest.raises(ValidationError):
        inventory("beamer")
    with pytest.raises(ValidationError):
        inventory("projector", role="router")
    with pytest.raises(ValidationError):
        IfaceSettings.model_validate({"type": "iface", "roles": {"eth0": "uplink"}})
    for role in AGENT_ROLES:
        assert inventory("panel", role=role).agents[0].role == role
    assert "wan" in INTERFACE_ROLES and {"internet", "district"} <= TARGET_ROLES
    assert RulesSettings().multimedia_types == ["projector", "panel"]
