"""Policy profiles: the shipped ones, their sources, and the errors of the rule format."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.rules import METRICS, load_policies, load_policy
from collector.rules.policy import BUILTIN_DIR, resolve_policy
from common.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests" / "fixtures" / "policy_seeds"
SHIPPED = ["cn-moe-2017", "cn-moe-13fyp", "guangzhou-2017", "yunnan-13fyp", "cn-moe-edu2",
           "uk-dfe-broadband", "schoolmon-operations"]
# Rows of policy-targets.md, by the document their source column names. The agent-freshness
# rule once filed under "信息技术安全监测和检查常态化" is ours: schoolmon-operations.
ROWS_BY_PROFILE = {
    "cn-moe-2017": {"access_10m", "internet_connected", "multimedia_ratio",
                    "all_classrooms_school"},
    "guangzhou-2017": {"access_100m", "access_1000m", "city_egress_40g", "district_link_10g",
                       "banbantong", "wireless_campus"},
    "yunnan-13fyp": {"access_1000m", "class_link_100m", "backbone_10g", "multimedia_compulsory",
                     "resource_platforms", "demonstration_broadband",
                     "demonstration_multimedia"},
    "cn-moe-13fyp": {"broadband_schools", "broadband_teaching_points", "per_class_urban",
                     "per_class_rural", "teaching_point", "wireless_campus"},
    "cn-moe-edu2": {"internet_connected"},
}
ALL_ROWS = {"access_10m", "access_100m", "access_1000m", "city_egress_40g", "district_link_10g",
            "per_class_urban", "per_class_rural", "teaching_point", "class_link_100m",
            "backbone_10g", "internet_connected", "multimedia_ratio", "all_classrooms_school",
            "wireless_campus", "banbantong", "multimedia_compulsory", "resource_platforms",
            "demonstration_broadband", "demonstration_multimedia", "broadband_schools",
            "broadband_teaching_points"}
STATUS = {"cn-moe-2017": "work_points", "guangzhou-2017": "work_points", "yunnan-13fyp": "plan",
          "cn-moe-13fyp": "draft_for_comment", "cn-moe-edu2": "news_summary",
          "uk-dfe-broadband": "standard", "schoolmon-operations": "operational"}


def test_shipped_profiles_load_by_name() -> None:
    """Every shipped profile loads, by name, from configs/policies/."""
    profiles = load_policies(SHIPPED)
    assert [p.name for p in profiles] == SHIPPED
    assert resolve_policy("cn-moe-2017") == BUILTIN_DIR / "cn-moe-2017.yaml"


@pytest.mark.parametrize("name", sorted(ROWS_BY_PROFILE))
def test_profile_covers_its_rows(name: str) -> None:
    """Each Chinese profile has exactly the policy-targets.md rows its document sources."""
    assert {r.id for r in load_policy(name).rules} == ROWS_BY_PROFILE[name]


def test_every_target_row_is_in_a_profile() -> None:
    """No row of policy-targets.md is left without a rule."""
    covered = set().union(*(set(rows) for rows in ROWS_BY_PROFILE.values()))
    assert covered == ALL_ROWS


@pytest.mark.parametrize("name", sorted(ROWS_BY_PROFILE))
def test_sources_are_quotes_of_the_document(name: str) -> None:
    """Every rule's source is verbatim text of the profile's seed document."""
    profile = load_policy(name)
    assert profile.seed is not None
    text = (SEEDS / profile.seed).read_text(encoding="utf-8")
    for rule in profile.rules:
        for quote in rule.source.split(" … "):
            assert quote in text, (rule.id, quote)


@pytest.mark.parametrize("name", sorted(ROWS_BY_PROFILE))
def test_sources_are_whole_sentences(name: str) -> None:
    """A source is a whole sentence of the document: it ends with 。 (not a cut-out phrase)."""
    for rule in load_policy(name).rules:
        assert rule.source.endswith("。"), (rule.id, rule.source[-12:])


def test_status_and_deadlines() -> None:
    """Each profile says what kind of document it quotes; each Chinese target its year."""
    for profile in load_policies(SHIPPED):
        assert profile.status == STATUS[profile.name]
    deadlines = {(p.name, r.id): r.deadline for p in load_policies(sorted(ROWS_BY_PROFILE))
                 for r in p.rules}
    assert {d for (name, _r), d in deadlines.items() if name.endswith("2017")} == {2017}
    assert deadlines[("cn-moe-13fyp", "per_class_rural")] == 2020
    assert deadlines[("yunnan-13fyp", "demonstration_multimedia")] == 2018
    assert deadlines[("yunnan-13fyp", "multimedia_compulsory")] == 2020
    assert deadlines[("cn-moe-edu2", "internet_connected")] == 2022


def test_qualifiers_of_the_texts() -> None:
    """有条件的, 东部和具备条件的城镇, 义务教育, 示范学校, 基本: each in the rule and its title."""
    fyp = {r.id: r for r in load_policy("cn-moe-13fyp").rules}
    assert fyp["per_class_rural"].applies_to.qualified is True
    assert fyp["teaching_point"].applies_to.qualified is True
    assert fyp["per_class_urban"].applies_to.qualified is None  # no qualifier in the text
    wireless = fyp["wireless_campus"].applies_to
    assert [c.region for c in wireless.any_of] == [["east"], []]
    assert wireless.any_of[1].qualified is True and wireless.any_of[1].category == ["urban"]
    moe = {r.id: r for r in load_policy("cn-moe-2017").rules}
    assert moe["internet_connected"].applies_to.qualified is True
    assert moe["internet_connected"].basically is True
    yunnan = {r.id: r for r in load_policy("yunnan-13fyp").rules}
    assert yunnan["multimedia_compulsory"].applies_to.compulsory is True
    assert yunnan["demonstration_multimedia"].applies_to.demonstration is True
    assert yunnan["backbone_10g"].applies_to.network == ["province"]
    for rule in (fyp["per_class_rural"], fyp["teaching_point"], moe["internet_connected"]):
        assert "条件" in (rule.title or ""), rule.id


def test_invented_rule_is_ours() -> None:
    """No seed profile carries agent freshness; the operational profile does, labelled."""
    for name in ROWS_BY_PROFILE:
        assert all(r.metric != "agent_fresh" for r in load_policy(name).rules), name
    ops = load_policy("schoolmon-operations")
    assert ops.seed is None and ops.status == "operational"
    assert {r.metric for r in ops.rules} == {"agent_fresh", "edu_network_up"}


def test_uk_profile_by_school_level() -> None:
    """UK DfE: 100/30 for primary, 1 Gbit/s both ways for secondary and all-through."""
    rules = {r.id: r for r in load_policy("uk-dfe-broadband").rules}
    assert (rules["primary_download_100m"].threshold, rules["primary_upload_30m"].threshold) \
        == (100, 30)
    assert rules["secondary_upload_1g"].metric == "access_up_mbps"
    assert rules["secondary_download_1g"].applies_to.level == ["secondary", "combined"]
    assert all(r.source.endswith(".") for r in rules.values())


def test_private_and_public_targets_of_guangzhou() -> None:
    """Guangzhou: 1000M applies to public schools only, 100M to every school."""
    rules = {r.id: r for r in load_policy("guangzhou-2017").rules}
    assert rules["access_1000m"].applies_to.ownership == ["public"]
    assert rules["access_100m"].applies_to.ownership == ["public", "private"]  # 公民办


def test_metric_set_is_documented() -> None:
    """docs/policies.md defines every metric of the fixed set."""
    doc = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
    for metric in METRICS:
        assert f"| `{metric}` |" in doc, metric


VALID: dict[str, Any] = {
    "name": "mine", "title": "Mine", "document": "Our district plan",
    "rules": [{"id": "a", "metric": "access_mbps", "threshold": 10, "source": "x"}],
}


def problems(tmp_path: Path, data: dict[str, Any], name: str = "mine.yaml") -> list[str]:
    """ConfigError lines of loading ``data`` as a profile file, path prefix removed."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_policy(str(path))
    return [line.removeprefix(f"{path}: ") for line in exc.value.lines]


def test_own_profile_by_path(tmp_path: Path) -> None:
    """A district's own profile, given by path, relative to the config's directory."""
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(VALID), encoding="utf-8")
    assert load_policy("mine.yaml", tmp_path).rules[0].comparator == ">="
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "mine.yaml").write_text(yaml.safe_dump(VALID), encoding="utf-8")
    assert load_policies(["mine"], tmp_path)[0].name == "mine"


def rule_edit(**changes: Any) -> dict[str, Any]:
    """VALID with its rule changed (None removes a key)."""
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            data["rules"][0].pop(key)
        else:
            data["rules"][0][key] = value
    return data


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (rule_edit(colour="red"), "rules.0.colour: unknown key"),
        (rule_edit(metric="speed"), "rules.0.metric: Input should be 'access_mbps', "
         "'access_up_mbps', 'per_class_mbps', 'per_student_mbps', 'isp_ratio', 'internet_up', "
         "'class_link_mbps', 'backbone_mbps', 'multimedia_ratio', 'multimedia_uptime', "
         "'all_classrooms_equipped', 'wifi_coverage', 'wifi_good_pct', 'agent_fresh', "
         "'edu_network_up', 'targets_up', 'egress_mbps', 'district_link_mbps' or "
         "'backbone_link_mbps'"),
        (rule_edit(comparator="=>"),
         "rules.0.comparator: Input should be '>=', '>', '<=', '<' or '=='"),
        (rule_edit(scope="district_share"),
         "rules.0.share_target: needed with scope district_share, and only there"),
        (rule_edit(share_target=70),
         "rules.0.share_target: needed with scope district_share, and only there"),
        (rule_edit(scope="classroom"),
         "rules.0.scope: metric access_mbps works with scope district_share or school, "
         "not classroom"),
        (rule_edit(metric="internet_up", statistic="p90"),
         "rules.0.statistic: metric internet_up takes no statistic"),
        (rule_edit(statistic="p900"), "rules.0.statistic: 'p900' is not a statistic: p1..p100, "
         "min, max, mean, median or last"),
        (rule_edit(window="a week"),
         "rules.0.window: 'a week' is not a duration like '30s', '5m', '1h' or '14d'"),
        (rule_edit(metric="wifi_coverage", tolerance_pct=5),
         "rules.0.tolerance_pct: only for bandwidth metrics, not wifi_coverage"),
        (rule_edit(applies_to={"category": ["suburban"]}),
         "rules.0.applies_to.category.0: Input should be 'urban', 'rural' or 'teaching_point'"),
        (rule_edit(source=None), "rules.0.source: Field required"),
        (rule_edit(applies_to={"conditions": True}), "rules.0.applies_to.conditions: unknown key"),
        (rule_edit(applies_to={"any_of": [{"province": ["yunnan"]}]}),
         "rules.0.applies_to.any_of.0.province: unknown key"),
        (rule_edit(applies_to={"region": ["north"]}),
         "rules.0.applies_to.region.0: Input should be 'east', 'central' or 'west'"),
        (rule_edit(applies_to={"network": ["city"], "category": ["urban"]}),
         "rules.0.applies_to.network: a network-node rule takes no school attributes"),
        (rule_edit(metric="egress_mbps"),
         "rules.0.applies_to.network: metric egress_mbps is a network node's; network rules "
         "use egress_mbps, district_link_mbps or backbone_link_mbps"),
        (rule_edit(metric="targets_up"),
         "rules.0.targets: needed with metric targets_up, and only there"),
        (rule_edit(deadline=17), "rules.0.deadline: Input should be greater than or equal to "
         "1990"),
        ({**VALID, "rules": VALID["rules"] * 2}, "rules: duplicate rule id 'a'"),
        ({**VALID, "rules": []}, "rules: List should have at least 1 item after validation, "
         "not 0"),
        ({**VALID, "name": "Mine!"}, "name: String should match pattern "
         "'^[a-z][a-z0-9_.-]{0,63}$'"),
    ],
)
def test_format_errors_name_their_key(tmp_path: Path, data: dict[str, Any], line: str) -> None:
    """Each mistake is one 'file: path.to.key: why' line."""
    assert problems(tmp_path, data) == [line]


def test_unknown_and_twice_listed_policies(tmp_path: Path) -> None:
    """policies: names that do not resolve, or the same profile twice, name their index."""
    with pytest.raises(ConfigError) as exc:
        load_policies(["cn-moe-2017", "nope", "cn-moe-2017"], tmp_path, origin="c.yaml")
    assert exc.value.lines[0].startswith("c.yaml: policies.1: no policy 'nope' (looked for")
    assert exc.value.lines[1] == "c.yaml: policies.2: policy 'cn-moe-2017' listed twice"


def test_name_must_match_file_name(tmp_path: Path) -> None:
    """A profile found by name must carry that name (the compliance points' policy tag)."""
    (tmp_path / "policies").mkdir()
    path = tmp_path / "policies" / "other.yaml"
    path.write_text(yaml.safe_dump(VALID), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_policy("other", tmp_path)
    assert exc.value.lines == [f"{path}: name: 'mine' differs from the file name 'other'"]
