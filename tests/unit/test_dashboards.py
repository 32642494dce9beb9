"""The generated dashboards: up to date, valid for Grafana's schema, consistent with the data."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard as SdkDashboard

from collector.measurements import MEASUREMENTS
from common.kinds import KINDS
from dashboards import build
from dashboards.model import DATASOURCE_UID, GRID_WIDTH

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "dashboards" / "dashboard.schema.json").read_text())
BOARDS = sorted(build.JSON_DIR.glob("*.json"))
register_default_plugins()


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _targets(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for p in board["panels"] if p["type"] != "row" for t in p["targets"]]


def dropped_by_sdk(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Keys or values of ``ours`` that Grafana's types did not read back."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [f"{path}: not an object"]
        out = []
        for key, value in ours.items():
            out += ([f"{path}.{key}: unknown to Grafana"] if key not in theirs
                    else dropped_by_sdk(value, theirs[key], f"{path}.{key}"))
        return out
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(ours) != len(theirs):
            return [f"{path}: list differs"]
        return [m for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
                for m in dropped_by_sdk(a, b, f"{path}[{i}]")]
    return [] if ours == theirs else [f"{path}: {ours!r} read back as {theirs!r}"]


def sdk_round_trip(board: dict[str, Any]) -> Any:
    """The dashboard read by grafana-foundation-sdk's Dashboard and written again."""
    return json.loads(json.dumps(SdkDashboard.from_json(board), cls=JSONEncoder))


def test_committed_json_is_up_to_date(tmp_path: Path) -> None:
    """dashboards/json/ is what dashboards/build.py writes now (run it after a change)."""
    written = build.build(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in BOARDS)
    for path in written:
        assert path.read_text() == (build.JSON_DIR / path.name).read_text(), (
            f"{path.name} is stale: run .venv/bin/python -m dashboards.build")


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_dashboard_matches_the_json_schema(path: Path) -> None:
    """Each dashboard validates against dashboards/dashboard.schema.json."""
    jsonschema.validate(_load(path), SCHEMA)


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_grafana_types_read_back_every_key(path: Path) -> None:
    """grafana-foundation-sdk's Dashboard.from_json keeps every key and value we write."""
    board = _load(path)
    assert dropped_by_sdk(board, sdk_round_trip(board)) == []


def test_validators_catch_mistakes() -> None:
    """A misspelled option and a target without rawQuery are both caught."""
    board = _load(build.JSON_DIR / "district.json")
    broken = copy.deepcopy(board)
    panel = next(p for p in broken["panels"] if p["type"] == "stat")
    panel["options"]["colourMode"] = "value"
    panel["gridpos"] = panel.pop("gridPos")
    problems = dropped_by_sdk(broken, sdk_round_trip(broken))
    assert any("colourMode" in p for p in problems) and any("gridpos" in p for p in problems)
    del panel["targets"][0]["rawQuery"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_panels_do_not_overlap(path: Path) -> None:
    """Grid positions from the layout never overlap and stay inside the 24 columns."""
    taken: set[tuple[int, int]] = set()
    for panel in _load(path)["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= GRID_WIDTH
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_queries_name_known_measurements_and_fields(path: Path) -> None:
    """Every FROM names a measurement agents or the collector write; every field exists."""
    # The collector's own measurements come from their one declaration.
    known = ({k: set(v.fields) for k, v in KINDS.items()}
             | {k: set(m.fields) for k, m in MEASUREMENTS.items()})
    for target in _targets(_load(path)):
        query = target["query"]
        measurements = set(re.findall(r'FROM "([a-z_]+)"', query))
        assert measurements and measurements <= set(known), query
        fields = set(known[next(iter(measurements))]) if len(measurements) == 1 else set()
        for name in re.findall(r'\w+\("([a-z_]+)"', query):
            aliases = set(re.findall(r'AS "([a-z_]+)"', query))
            assert name in fields | aliases, (name, query)


def test_links_point_to_existing_dashboards() -> None:
    """Every /d/<uid>/ link names a dashboard that is built."""
    uids = {_load(p)["uid"] for p in BOARDS}
    text = " ".join(p.read_text() for p in BOARDS)
    linked = set(re.findall(r"/d/([a-z-]+)/", text))
    assert linked and linked <= uids
    assert {"schoolmon-school", "schoolmon-classroom"} <= linked


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_variables_are_used_by_the_queries(path: Path) -> None:
    """Each variable filters a panel query or another variable (district -> school)."""
    board = _load(path)
    queries = " ".join([t["query"] for t in _targets(board)]
                       + [v["query"] for v in board["templating"]["list"]])
    for var in board["templating"]["list"]:
        assert f"${var['name']}" in queries, var["name"]


def test_provisioning_points_at_the_dashboards_and_datasource() -> None:
    """The datasource uid is the one the dashboards use; InfluxQL (not Flux) mode."""
    prov = ROOT / "dashboards" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "schoolmon.yaml").read_text())["datasources"][0]
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == "influxdb"
    assert ds["jsonData"].get("version", "InfluxQL") == "InfluxQL"
    provider = yaml.safe_load((prov / "dashboards" / "schoolmon.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"]


def test_no_dashboard_computes_a_percentile() -> None:
    """Access figures come from the rules (school_status), never from InfluxQL percentile()."""
    for path in BOARDS:
        for target in _targets(_load(path)):
            assert "percentile(" not in target["query"], (path.name, target["query"])
    district = " ".join(t["query"] for t in _targets(_load(build.JSON_DIR / "district.json")))
    assert 'last("tier_mbps") AS "tier" FROM "school_status"' in district
    assert '"tier" = 1000' in district and '"tier" = 0' in district
