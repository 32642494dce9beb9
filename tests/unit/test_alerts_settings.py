"""AlertRulesSettings validation, quiet hours and inhibition matchers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from collector.alerts.inhibit import Inhibitor
from collector.alerts.model import Alert, AlertKey
from collector.alerts.quiet import QuietHours
from collector.alerts.settings import AlertRulesSettings, InhibitRule
from common.config import ConfigError, load_model


def test_defaults_match_the_documented_thresholds() -> None:
    """The defaults docs/alerts.md lists."""
    rules = AlertRulesSettings()
    targets = rules.bandwidth_target_mbps
    assert (targets.urban, targets.rural, targets.teaching_point) == (100.0, 10.0, 4.0)
    assert targets.for_category("teaching_point") == 4.0
    assert rules.offline_after == 600 and rules.device_down_grace == 600
    assert rules.bandwidth_consecutive_tests == 3 and rules.wifi_poor_dbm == -75
    assert rules.quiet_hours is None


def test_yaml_errors_name_the_key(tmp_path: Path) -> None:
    """Unknown keys, bad ranges, bad matchers, bad zones: one line each with the path."""
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({
        "offline_afer": "5m", "quiet_hours": "22:00-22:00", "quiet_hours_timezone": "Mars/Base",
        "inhibit": [{"source": ["internet_down"], "target": ["device_down"],
                     "target_match": ["role~gateway"]}],
        "dashboard_path": "/d/x", "enabled": ["toaster"], "wifi_poor_for": "soon",
    }))
    with pytest.raises(ConfigError) as info:
        load_model(AlertRulesSettings, path)
    text = "\n".join(info.value.lines)
    for key in ("offline_afer: unknown key", "quiet_hours: ", "quiet_hours_timezone: unknown",
                "inhibit.0.target_match: ", "dashboard_path: must contain {school}",
                "enabled.0: ", "wifi_poor_for: "):
        assert f"rules.yaml: {key}" in text, text


def test_durations_and_targets_from_yaml(tmp_path: Path) -> None:
    """Durations as strings; per-category targets partially overridden."""
    path = tmp_path / "rules.yaml"
    path.write_text("offline_after: 15m\nbandwidth_target_mbps: {rural: 20}\n"
                    "quiet_hours: '22:00-07:00'\n")
    rules = load_model(AlertRulesSettings, path)
    assert rules.offline_after == 900
    assert rules.bandwidth_target_mbps.rural == 20 and rules.bandwidth_target_mbps.urban == 100


def test_quiet_hours_wrap_midnight() -> None:
    """22:00-07:00 covers 23:00 and 06:59, not 07:00 or 21:59; a day range works too."""
    zone = ZoneInfo("Asia/Shanghai")
    quiet = QuietHours("22:00-07:00", "Asia/Shanghai")

    def at(hour: int, minute: int) -> float:
        return dt.datetime(2026, 5, 12, hour, minute, tzinfo=zone).timestamp()

    assert quiet.active(at(23, 0)) and quiet.active(at(6, 59)) and quiet.active(at(22, 0))
    assert not quiet.active(at(7, 0)) and not quiet.active(at(21, 59))
    lunch = QuietHours("12:00-13:30", "Asia/Shanghai")
    assert lunch.active(at(12, 30)) and not lunch.active(at(13, 30))
    assert not QuietHours(None, "UTC").active(at(23, 0))


def test_inhibit_matchers() -> None:
    """source_match / target_match with = and != on labels."""
    inhibitor = Inhibitor([InhibitRule(source=["agent_offline"], source_match=["role=gateway"],
                                       target=["agent_offline"], target_match=["role!=gateway"])])

    def offline(agent: str, role: str) -> Alert:
        return Alert(AlertKey("agent_offline", "s", agent), "critical", "d", 0, {"role": role})

    gw, pc = offline("gw", "gateway"), offline("pc", "classroom_pc")
    server = offline("sv", "server")
    assert inhibitor.muted([gw, pc, server]) == {pc.key, server.key}
    assert inhibitor.muted([pc, server]) == set()


def test_docs_example_is_valid_and_shows_the_defaults() -> None:
    """docs/alerts.md: the collector.yaml example validates; its values are the defaults."""
    from collector.alerts.settings import AlertSettings

    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text("utf-8")
    blocks = [b.split("```", 1)[0] for b in doc.split("```yaml\n")[1:]]
    example = yaml.safe_load(blocks[0])["alerts"]
    rules = AlertRulesSettings.model_validate(example.pop("rules"))
    assert rules == AlertRulesSettings(quiet_hours="22:00-07:00")
    settings = AlertSettings.model_validate(
        example, context={"environ": {"SCHOOLMON_SMTP_PASSWORD": "x"}})
    assert settings.group_wait == 30 and settings.smtp.secret("password") == "x"
    assert (settings.group_interval, settings.resolve_timeout) == (300, 86400)
    inhibit = AlertRulesSettings.model_validate(yaml.safe_load(blocks[1])).inhibit
    assert inhibit == AlertRulesSettings().inhibit


def test_timing_under_rules_names_its_new_place(tmp_path: Path) -> None:
    """group_interval and resolve_timeout moved beside group_wait: the old place says so."""
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"group_interval": "5m"}))
    with pytest.raises(ConfigError) as info:
        load_model(AlertRulesSettings, path)
    text = "\n".join(info.value.lines)
    assert "write it as alerts.group_interval (beside group_wait)" in text, text
