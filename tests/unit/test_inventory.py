"""inventory.yaml: the example loads; broken references are errors naming their path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.inventory import Inventory, load_inventory
from common.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "inventory.example.yaml"


def test_example_loads() -> None:
    """The shipped example is valid and its references resolve."""
    inv = load_inventory(EXAMPLE, environ={})
    assert [d.id for d in inv.districts] == ["gz-th", "yn-zy"]
    assert [s.id for s in inv.schools] == ["gz-th-001", "gz-th-tp-07", "gz-th-p-02", "yn-zy-012"]
    school = inv.school("gz-th-001")
    assert school is not None
    assert school.category == "urban" and school.classes == 24
    assert [c.id for c in school.classrooms] == ["301", "302", "lab-1"]
    assert school.classrooms[2].ordinary is False
    assert [(d.id, d.classroom, d.type) for d in school.devices] == [
        ("proj-301", "301", "projector"), ("panel-302", "302", "panel")]
    teaching_point = inv.school("gz-th-tp-07")
    assert teaching_point is not None and teaching_point.ownership == "public"
    assert teaching_point.devices[0].check == "icmp"  # the default
    assert inv.school("nope") is None
    assert [(a.id, a.role, a.classroom) for a in inv.agents] == [
        ("gz-th-001-gw", "gateway", None),
        ("gz-th-001-pc301", "classroom_pc", "301"),
        ("gz-th-tp-07-gw", "gateway", None),
        ("gz-th-p-02-gw", "gateway", None),
        ("gz-th-p-02-pc7-2", "classroom_pc", "7-2"),
        ("yn-zy-012-gw", "gateway", None),
        ("gz-edunet-snmp", "server", None),  # the city network node's agent
    ]
    # What the policy texts distinguish: region (district default), levels, conditions,
    # demonstration schools; and the city network node with the ports its targets name.
    private, rural = inv.school("gz-th-p-02"), inv.school("yn-zy-012")
    assert private is not None and rural is not None
    assert inv.region_of(private) == "east" and inv.region_of(rural) == "west"
    assert private.levels == ["primary", "junior"] and school.levels is None
    assert (rural.qualified, rural.demonstration, school.qualified, school.demonstration) == (
        False, True, True, False)
    assert [(n.id, n.level, [lk.role for lk in n.links]) for n in inv.networks] == [
        ("gz-edunet", "city", ["egress", "district_link"])]
    assert inv.node_district("gz-edunet") == "gz-th" and inv.node_district("nope") is None


@pytest.fixture
def example() -> dict[str, Any]:
    """The example as data, to break in each test."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def problems(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    """The ConfigError lines for ``data`` written to a file."""
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_inventory(path, environ={})
    return [line.removeprefix(f"{path}: ") for line in exc.value.lines]


def test_duplicate_school_id(tmp_path: Path, example: dict[str, Any]) -> None:
    """Two schools with one id."""
    example["schools"][1]["id"] = "gz-th-001"
    assert problems(tmp_path, example) == ["(top): duplicate school id 'gz-th-001'"]


def test_duplicate_district_and_agent_ids(tmp_path: Path, example: dict[str, Any]) -> None:
    """Duplicate district and agent ids are refused too."""
    dup_district = copy.deepcopy(example)
    dup_district["districts"].append({"id": "gz-th", "name": "again"})
    assert problems(tmp_path, dup_district) == ["(top): duplicate district id 'gz-th'"]
    example["agents"][2]["id"] = "gz-th-001-gw"
    assert problems(tmp_path, example) == ["(top): duplicate agent id 'gz-th-001-gw'"]


def test_unknown_district(tmp_path: Path, example: dict[str, Any]) -> None:
    """A school in a district that is not listed."""
    example["schools"][1]["district"] = "gz-yx"
    assert problems(tmp_path, example) == ["schools.1.district: unknown district 'gz-yx'"]


def test_device_in_unknown_classroom(tmp_path: Path, example: dict[str, Any]) -> None:
    """A device placed in a classroom the school does not have."""
    example["schools"][0]["devices"][1]["classroom"] = "999"
    assert problems(tmp_path, example) == [
        "schools.0.devices.1.classroom: unknown classroom '999'"
    ]


def test_duplicate_classroom(tmp_path: Path, example: dict[str, Any]) -> None:
    """Two classrooms with one id in a school."""
    example["schools"][0]["classrooms"].append({"id": "301"})
    assert problems(tmp_path, example) == ["schools.0: duplicate classroom id '301'"]


def test_agent_of_unknown_school(tmp_path: Path, example: dict[str, Any]) -> None:
    """An agent reporting for a school that is not listed."""
    example["agents"][1]["school"] = "gz-th-404"
    assert problems(tmp_path, example) == ["agents.1.school: unknown school 'gz-th-404'"]


def test_agent_in_unknown_classroom(tmp_path: Path, example: dict[str, Any]) -> None:
    """An agent placed in a classroom its school does not have."""
    example["agents"][1]["classroom"] = "lab-9"
    assert problems(tmp_path, example) == ["agents.1.classroom: unknown classroom 'lab-9'"]


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (lambda d: d["schools"][0].update(category="suburban"),
         "schools.0.category: Input should be 'urban', 'rural' or 'teaching_point'"),
        (lambda d: d["schools"][0].update(classes=0),
         "schools.0.classes: Input should be greater than or equal to 1"),
        (lambda d: d["schools"][0]["location"].update(lat=91),
         "schools.0.location.lat: Input should be less than or equal to 90"),
        (lambda d: d["schools"][0].update(colour="red"), "schools.0.colour: unknown key"),
        (lambda d: d["schools"][0]["devices"][0].update(type="fridge"),
         "schools.0.devices.0.type: Input should be 'projector', 'panel', 'display', 'pc', "
         "'speaker' or 'other'"),
        (lambda d: d.pop("districts"), "districts: Field required"),
    ],
)
def test_field_errors_name_their_path(tmp_path: Path, example: dict[str, Any],
                                      edit: Any, line: str) -> None:
    """Wrong values and unknown keys point at the key."""
    edit(example)
    assert problems(tmp_path, example) == [line]


def test_model_validate_directly() -> None:
    """A minimal inventory: one district, no schools."""
    inv = Inventory.model_validate({"districts": [{"id": "d1", "name": "D"}]})
    assert inv.schools == [] and inv.agents == []


def test_network_nodes(tmp_path: Path, example: dict[str, Any]) -> None:
    """A network node needs a known district; its agent has no classroom; ids stay unique."""
    bad_district = copy.deepcopy(example)
    bad_district["networks"][0]["district"] = "nope"
    assert problems(tmp_path, bad_district) == ["networks.0.district: unknown district "
                                                "'nope'"]
    room = copy.deepcopy(example)
    room["agents"][-1]["classroom"] = "301"
    assert problems(tmp_path, room) == [f"agents.{len(room['agents']) - 1}.classroom: "
                                        "a network node has no classrooms"]
    example["networks"][0]["id"] = "gz-th-001"
    assert problems(tmp_path, example) == ["(top): duplicate school or network id 'gz-th-001'"]


def test_network_node_agent_identity() -> None:
    """The broker ACL names a network node's agent under the node's id and district."""
    from collector.brokerconfig import agent_identities

    identities = agent_identities(load_inventory(EXAMPLE, environ={}))
    assert (identities[0].district, identities[0].school) == ("gz-th", "gz-th-001")
    assert (identities[-1].district, identities[-1].school, identities[-1].agent) == (
        "gz-th", "gz-edunet", "gz-edunet-snmp")
