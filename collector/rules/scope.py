"""Which rules apply to which school or network node, and the inventory checks behind it."""

from __future__ import annotations

from collector.inventory import Inventory
from collector.rules.evaluate import BoundRule
from collector.rules.policy import SchoolFacts
from common.config import ConfigError


def check_zones(inv: Inventory, origin: str) -> None:
    """Every school's time zone is known (ConfigError naming each that is not)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    problems = []
    for i, school in enumerate(inv.schools):
        if school.timezone is None:
            continue
        try:
            ZoneInfo(school.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: name too long
            problems.append(f"{origin}: schools.{i}.timezone: unknown time zone "
                            f"{school.timezone!r}")
    if problems:
        raise ConfigError(problems)


def applicable_rules(inventory: Inventory, rules: list[BoundRule],
                     origin: str = "inventory") -> dict[str, list[tuple[int, BoundRule]]]:
    """Per school and network node, the (index, rule) pairs that apply to it.

    A rule whose ``applies_to`` needs an attribute a school lacks (its ``levels``, its region
    or its district's) is a ConfigError naming the school, the attribute and the rule: guessing
    would put the school in or out of a target the text sets for some schools only.
    """
    problems: list[str] = []
    out: dict[str, list[tuple[int, BoundRule]]] = {}
    for i, school in enumerate(inventory.schools):
        facts = SchoolFacts.of(school, inventory.region_of(school))
        mine = out[school.id] = []
        for index, b in enumerate(rules):
            missing = b.rule.applies_to.missing(facts)
            problems.extend(
                f"{origin}: schools.{i}.{attr}: school {school.id!r} has no {attr}, which rule "
                f"{b.policy}/{b.rule.id} needs (applies_to)"
                + ("; set it on the school or its district" if attr == "region" else "")
                for attr in missing)
            if not missing and b.rule.applies_to.matches(facts):
                mine.append((index, b))
    for net in inventory.networks:
        out[net.id] = [(index, b) for index, b in enumerate(rules)
                       if net.level in b.rule.applies_to.network]
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return out
