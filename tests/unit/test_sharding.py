"""Roles and district shards (collector/sharding.py): what each role subscribes to, the
inventory its rules see, and a districts: pattern that names nothing as a config error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.config import CollectorConfig
from collector.inventory import UnmatchedDistrictError, load_inventory
from collector.sharding import (
    ObservingCollector,
    build_collector,
    build_shard_rules_engine,
    resolve_shard,
)
from collector.subscriber import Collector
from common.config import ConfigError, load_model

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "configs" / "inventory.example.yaml"  # districts gz-th and yn-zy


def config(tmp_path: Path, **keys: Any) -> tuple[CollectorConfig, Path]:
    """A collector.yaml with the example inventory, a policy and the given keys."""
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump({
        "mqtt": {"topic_prefix": "sm/v1", "share_group": "ingest"},
        "storage": {"kind": "influxdb1"}, "inventory": str(INVENTORY),
        "policies": ["cn-moe-2017"], **keys}), encoding="utf-8")
    return load_model(CollectorConfig, path), path


def test_restricted_to_keeps_the_districts_schools_networks_and_agents() -> None:
    """Globs and ids; what is left is exactly the named districts' part."""
    inv = load_inventory(INVENTORY, environ={})
    part = inv.restricted_to(["yn-*"])
    assert [d.id for d in part.districts] == ["yn-zy"]
    assert {s.district for s in part.schools} == {"yn-zy"}
    assert part.schools == [s for s in inv.schools if s.district == "yn-zy"]
    ids = {s.id for s in part.schools} | {n.id for n in part.networks}
    assert part.agents and all(a.school in ids for a in part.agents)
    assert inv.restricted_to(["gz-th", "yn-zy"]).schools == inv.schools


def test_restricted_to_names_the_pattern_matching_nothing() -> None:
    """A typo is an error naming it and its place, not an empty shard."""
    inv = load_inventory(INVENTORY, environ={})
    with pytest.raises(UnmatchedDistrictError) as err:
        inv.restricted_to(["gz-th", "gz-tx*"])
    assert (err.value.index, err.value.pattern) == (1, "gz-tx*")


@pytest.mark.parametrize(("keys", "data", "status", "cls"), [
    # Ingest-only: shared per owned district (collectors owning it share its messages).
    ({"role": "ingest", "districts": ["gz-*"]}, ["$share/ingest/sm/v1/gz-th/+/+/data"],
     ["sm/v1/gz-th/+/+/status"], Collector),
    # Rules-only: every message of its districts (no share group), observed, never stored.
    ({"role": "rules", "districts": ["yn-zy"]}, ["sm/v1/yn-zy/+/+/data"],
     ["sm/v1/yn-zy/+/+/status"], ObservingCollector),
    # All, with rules: stores and acks, but shares with nobody (a share would split its data).
    ({"role": "all"}, ["sm/v1/+/+/+/data"], ["sm/v1/+/+/+/status"], Collector),
    # All, without rules or alerts: the ingest fleet's share group, as before roles existed.
    ({"role": "all", "policies": []}, ["$share/ingest/sm/v1/+/+/+/data"],
     ["sm/v1/+/+/+/status"], Collector),
])
def test_subscriptions_per_role(tmp_path: Path, keys: dict[str, Any], data: list[str],
                                status: list[str], cls: type[Collector]) -> None:
    """The filters a collector subscribes to, and the class that handles them."""
    cfg, path = config(tmp_path, **keys)
    shard = resolve_shard(cfg, path)
    collector = build_collector(cfg, shard)
    assert type(collector) is cls
    assert (collector.data_filters, collector.status_filters) == (data, status)


def test_rules_engine_sees_only_its_shard(tmp_path: Path) -> None:
    """Rules run on the owned districts' schools; ingest-only runs none."""
    cfg, path = config(tmp_path, role="rules", districts=["yn-zy"])
    engine = build_shard_rules_engine(cfg, path, resolve_shard(cfg, path))
    assert engine is not None
    inv = load_inventory(INVENTORY, environ={})
    assert set(engine.school_ids()) == {s.id for s in inv.schools if s.district == "yn-zy"} | {
        n.id for n in inv.networks if n.district == "yn-zy"}
    cfg, path = config(tmp_path, role="ingest")
    assert build_shard_rules_engine(cfg, path, resolve_shard(cfg, path)) is None


@pytest.mark.parametrize(("keys", "line"), [
    ({"districts": ["gz-th", "sz-*"]}, "districts.1: 'sz-*' matches no district of the inventory"),
    ({"districts": ["gz-th"], "inventory": None}, "districts: needs an inventory to match against"),
    ({"role": "rules", "policies": []},
     "role: 'rules' needs an inventory and policies or alerts (it stores nothing else)"),
])
def test_config_errors_are_one_line(tmp_path: Path, keys: dict[str, Any], line: str) -> None:
    """Each names the key and why."""
    cfg, path = config(tmp_path, **keys)
    with pytest.raises(ConfigError) as err:
        resolve_shard(cfg, path)
    assert err.value.lines == [f"{path}: {line}"]
