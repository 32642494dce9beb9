"""Every text of the report in zh-CN and en."""
# Chinese text uses full-width punctuation on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Language = Literal["zh-CN", "en"]


@dataclass(frozen=True)
class Labels:
    """The report's texts in one language."""

    title: str
    policy: str
    period: str
    generated: str
    schools: str
    tiers_title: str
    tiers_note: str
    no_test: str
    shares_title: str
    share: str
    target: str
    trend_title: str
    summary_title: str
    misses_title: str
    misses_none: str
    misses_more: str
    rule: str
    school: str
    name: str
    district: str
    category: str
    value: str
    met: str
    counted: str
    no_data: str
    yes: str
    no: str
    unit_schools: str
    unit_classrooms: str
    reached: str
    not_reached: str
    categories: dict[str, str]
    deadline: str
    source: str
    document: str
    targets_title: str
    basically: str
    statuses: dict[str, str]
    fleet_title: str
    fleet_note: str
    fleet_none: str
    agent: str
    version: str
    config: str
    last_contact: str
    state: str
    never: str
    fleet_states: dict[str, str]


LABELS: Final[dict[str, Labels]] = {
    "zh-CN": Labels(
        title="教育信息化达标报告", policy="政策", period="统计期间", generated="生成时间",
        schools="学校数", tiers_title="各接入带宽档位的学校数",
        tiers_note="期间测速下行 {stat}", no_test="无测速",
        shares_title="各项指标达标比例（竖线为目标）", share="达标比例", target="目标",
        trend_title="达标比例趋势", summary_title="指标汇总", misses_title="未达标的学校",
        misses_none="所有学校均达标。", misses_more="仅显示前 {n} 行，完整数据见 report.csv。",
        rule="指标", school="学校代码", name="学校名称", district="区县", category="类别",
        value="数值", met="达标", counted="统计数", no_data="无数据", yes="是", no="否",
        unit_schools="所学校", unit_classrooms="间教室", reached="已达到目标",
        not_reached="未达到目标",
        categories={"urban": "城镇", "rural": "农村", "teaching_point": "教学点"},
        deadline="期限", source="原文", document="文件", targets_title="指标来源与期限",
        basically="基本（原文未定比例）",
        statuses={"work_points": "年度工作要点", "plan": "规划", "draft_for_comment":
                  "征求意见稿（非正式文件）", "news_summary": "新闻报道的摘要（非原文）",
                  "standard": "标准", "operational": "schoolmon 运行规则（非政策文件）"},
        fleet_title="采集端版本与最近联系", fleet_note="在线：1 小时内有数据；风险：1 小时至 7 天；"
        "失联：超过 7 天或从未联系。截至统计期末（或当前时间）。",
        fleet_none="没有采集端。", agent="采集端", version="版本", config="配置指纹",
        last_contact="最近联系", state="状态", never="从未",
        fleet_states={"live": "在线", "at_risk": "风险", "dropped_off": "失联"}),
    "en": Labels(
        title="Education ICT compliance report", policy="Policy", period="Period",
        generated="Generated", schools="Schools", tiers_title="Schools per access-bandwidth tier",
        tiers_note="speed-test download {stat} over the period", no_test="no test",
        shares_title="Share meeting each target (line: the target)", share="Share",
        target="Target", trend_title="Share over the period", summary_title="Summary",
        misses_title="Schools that miss a target", misses_none="Every school meets every target.",
        misses_more="Only the first {n} rows are shown; report.csv has them all.",
        rule="Rule", school="School id", name="Name", district="District", category="Category",
        value="Value", met="Met", counted="Counted", no_data="no data", yes="yes", no="no",
        unit_schools="schools", unit_classrooms="classrooms", reached="target reached",
        not_reached="target not reached",
        categories={"urban": "urban", "rural": "rural", "teaching_point": "teaching point"},
        deadline="Deadline", source="Source (whole sentence)", document="Document",
        targets_title="Targets: source and deadline",
        basically="basically (no exact share stated)",
        statuses={"work_points": "annual work points", "plan": "plan",
                  "draft_for_comment": "draft for comment (not an issued document)",
                  "news_summary": "a news site's summary (not the document itself)",
                  "standard": "standard",
                  "operational": "schoolmon's own operational rule (no policy document)"},
        fleet_title="Agents: release and last contact",
        fleet_note="live: heard within 1 h; at risk: 1 h to 7 days ago; dropped off: more "
        "than 7 days ago or never. As of the end of the period (or now).",
        fleet_none="No agents.", agent="Agent", version="Release", config="Config",
        last_contact="Last contact", state="State", never="never",
        fleet_states={"live": "live", "at_risk": "at risk", "dropped_off": "dropped off"}),
}

# English names of the rule ids of the shipped profiles (their titles are Chinese).
RULE_NAMES_EN: Final[dict[str, str]] = {
    "access_10m": "Access >= 10 Mbit/s", "access_100m": "Access >= 100 Mbit/s",
    "access_1000m": "Access >= 1000 Mbit/s", "per_class_urban": "Urban: >= 10 Mbit/s per class",
    "per_class_rural": "Rural: >= 5 Mbit/s per class",
    "teaching_point": "Teaching point: access >= 4 Mbit/s",
    "class_link_100m": "100 Mbit/s to every classroom", "backbone_10g": "10 Gbit/s backbone",
    "internet_connected": "School reaches the internet",
    "multimedia_ratio": "Classrooms with working multimedia equipment",
    "all_classrooms_school": "Schools with every classroom equipped",
    "wireless_campus": "Classrooms with usable Wi-Fi",
    "agents_reporting": "Every agent reporting (ours)",
    "edu_network_up": "Education network reachable (ours)",
    "banbantong": "Every class with working multimedia (班班通)",
    "city_egress_40g": "City network internet egress >= 40 Gbit/s",
    "district_link_10g": "City network link to each district >= 10 Gbit/s",
    "multimedia_compulsory": "Compulsory-education classrooms with multimedia",
    "resource_platforms": "National and provincial resource platforms reachable",
    "demonstration_broadband": "Demonstration schools on broadband (2018)",
    "demonstration_multimedia": "Demonstration-school classrooms with multimedia (2018)",
    "broadband_schools": "Every school on broadband",
    "broadband_teaching_points": "Qualified teaching points on broadband",
}


def labels(language: str) -> Labels:
    """The labels of a language (en for an unknown one)."""
    return LABELS.get(language, LABELS["en"])


def rule_name(rule_id: str, title: str, language: str) -> str:
    """What the report calls a rule: the profile's title in zh-CN, an English name in en."""
    if language == "en":
        return RULE_NAMES_EN.get(rule_id) or (
            title[title.index("(") + 1:title.rindex(")")] if "(" in title and ")" in title
            else rule_id)
    return title.split(" (", maxsplit=1)[0] if title else rule_id
