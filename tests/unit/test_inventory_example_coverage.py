"""configs/inventory.example.yaml shows every kind of entry the rules distinguish."""

from __future__ import annotations

from pathlib import Path

from collector.inventory import load_inventory

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "inventory.example.yaml"


def test_example_shows_every_kind_of_school() -> None:
    """Every category, both ownerships, every level, optional fields used at least once."""
    inv = load_inventory(EXAMPLE, environ={})
    schools = inv.schools
    assert {s.category for s in schools} == {"urban", "rural", "teaching_point"}
    assert {s.ownership for s in schools} == {"public", "private"}
    assert {s.level for s in schools} == {"primary", "combined"}
    assert all(s.classes >= 1 for s in schools)
    assert any(s.students for s in schools) and any(s.students is None for s in schools)
    assert any(s.location for s in schools) and any(s.timezone for s in schools)
    assert any(s.timetable and s.timetable.holidays for s in schools)
    assert len({s.district for s in schools}) == 2


def test_example_shows_classrooms_devices_agents() -> None:
    """Ordinary and other rooms, each device type the multimedia targets count, PC agents."""
    inv = load_inventory(EXAMPLE, environ={})
    rooms = [c for s in inv.schools for c in s.classrooms]
    assert {c.ordinary for c in rooms} == {True, False}
    devices = [d for s in inv.schools for d in s.devices]
    assert {"projector", "panel", "pc", "display"} <= {d.type for d in devices}
    assert {d.check for d in devices} == {"pjlink", "icmp", "tcp"}
    assert {a.role for a in inv.agents} == {"gateway", "classroom_pc", "server"}
    assert all(any(a.school == s.id for a in inv.agents) for s in inv.schools)
