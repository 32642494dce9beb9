"""`schoolmon check-config`: examples pass; each mistake is one 'file: path: why' line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schoolmon.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
AGENT = CONFIGS / "agent.example.yaml"
COLLECTOR = CONFIGS / "collector.example.yaml"
INVENTORY = CONFIGS / "inventory.example.yaml"
CLASSROOM = CONFIGS / "agent.classroom.example.yaml"
SECRETS = {
    "SCHOOLMON_MQTT_PASSWORD": "mqtt-pw",
    "SCHOOLMON_COLLECTOR_PASSWORD": "collector-pw",
    "SCHOOLMON_SMTP_PASSWORD": "smtp-pw",
    "SCHOOLMON_SNMP_COMMUNITY": "public-ro",
    "SCHOOLMON_SNMP_AUTH_KEY": "auth-key-123",
    "SCHOOLMON_SNMP_PRIV_KEY": "priv-key-123",
    "SCHOOLMON_SSH_PASSWORD": "ssh-pw",
    "SCHOOLMON_PJLINK_PASSWORD": "pj-pw",
}


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment variables the examples name."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def check(capsys: pytest.CaptureFixture[str], *files: Path | str) -> tuple[int, list[str],
                                                                          list[str]]:
    """Run check-config in-process: (exit code, stdout lines, stderr lines)."""
    code = main(["check-config", *map(str, files)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out.splitlines(), err.splitlines()


def variant(tmp_path: Path, source: Path, old: str, new: str, name: str = "cfg.yaml") -> Path:
    """A copy of an example with one piece of text replaced."""
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_examples_pass(capsys: pytest.CaptureFixture[str], secrets: None) -> None:
    """The shipped examples are valid when their secrets are set."""
    code, out, err = check(capsys, AGENT, COLLECTOR, INVENTORY, CLASSROOM)
    assert (code, err) == (0, [])
    assert out == [f"{AGENT}: ok (agent)", f"{COLLECTOR}: ok (collector)",
                   f"{INVENTORY}: ok (inventory)", f"{CLASSROOM}: ok (agent)"]


@pytest.mark.parametrize(
    ("source", "edit", "problem"),
    [
        pytest.param(AGENT, ("  max_inflight: 20\n", "  max_inflight: 20\n  colour: blue\n"),
                     "publish.colour: unknown key", id="unknown-key"),
        pytest.param(AGENT, ("  port: 8883\n", "  port: eighty\n"),
                     "mqtt.port: Input should be a valid integer, unable to parse string as "
                     "an integer", id="wrong-type"),
        pytest.param(AGENT, ("interval: 10s", "interval: 10 parsecs"),
                     "probes.0.iface.interval: '10 parsecs' is not a duration like '30s', "
                     "'5m', '1h' or '14d'", id="bad-duration"),
        pytest.param(AGENT, ("SCHOOLMON_MQTT_PASSWORD", "SCHOOLMON_NOT_SET_ANYWHERE"),
                     "mqtt.password: environment variable SCHOOLMON_NOT_SET_ANYWHERE is not set",
                     id="missing-secret-env"),
        pytest.param(COLLECTOR, ("  kind: influxdb1 ", "  kind: influxdb9 "),
                     "storage: Input tag 'influxdb9' found using 'kind' does not match any of "
                     "the expected tags: 'influxdb1', 'influxdb2'", id="unknown-storage-kind"),
        pytest.param(COLLECTOR, ("to: [it@district.example]", "to: [it-at-district]"),
                     "alerts.to.0: String should match pattern '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'",
                     id="bad-email"),
        pytest.param(INVENTORY, ("district: gz-th\n    category: teaching_point",
                                 "district: gz-xx\n    category: teaching_point"),
                     "schools.1.district: unknown district 'gz-xx'", id="unknown-district"),
    ],
)
@pytest.mark.usefixtures("secrets")
def test_one_problem_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              source: Path, edit: tuple[str, str], problem: str) -> None:
    """Each mistake is reported as 'file: path.to.key: why' and exits 2."""
    path = variant(tmp_path, source, *edit)
    code, out, err = check(capsys, path)
    assert code == 2
    assert out == []
    assert err == [f"{path}: {problem}"]


def test_missing_secret_from_the_environment(capsys: pytest.CaptureFixture[str],
                                             secrets: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset password variable is named with its key; other files still checked."""
    monkeypatch.delenv("SCHOOLMON_SMTP_PASSWORD")
    code, out, err = check(capsys, COLLECTOR, AGENT)
    assert code == 2
    assert out == [f"{AGENT}: ok (agent)"]
    assert err == [f"{COLLECTOR}: alerts.smtp.password: environment variable "
                   "SCHOOLMON_SMTP_PASSWORD is not set"]


def test_yaml_syntax_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A YAML error names the file and line."""
    path = tmp_path / "broken.yaml"
    path.write_text("agent:\n  id: a\n  school: [unclosed\nmqtt: {}\n", encoding="utf-8")
    code, out, err = check(capsys, path)
    assert code == 2 and out == []
    assert len(err) == 1
    assert err[0].startswith(f"{path}: line ")
    assert ": YAML: " in err[0]


@pytest.mark.parametrize("text", ["just: a mapping\n", "- a list\n", "", "42\n"])
def test_unknown_file_kind(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           text: str) -> None:
    """A file that is none of the three kinds is one line at (top)."""
    path = tmp_path / "what.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, err = check(capsys, path)
    assert code == 2 and out == []
    assert err == [f"{path}: (top): not an agent (agent:), collector (storage:), inventory "
                   "(districts:) or policy (name:, rules:) file"]


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A file that does not exist is one line, not an OSError."""
    path = tmp_path / "nope.yaml"
    code, _, err = check(capsys, path)
    assert code == 2
    assert err == [f"{path}: cannot read: No such file or directory"]


def test_several_problems_all_reported(capsys: pytest.CaptureFixture[str], secrets: None,
                                       tmp_path: Path) -> None:
    """Every problem of every file is listed, one per line."""
    path = variant(tmp_path, AGENT, "  port: 8883\n", "  port: 0\n  colour: blue\n")
    other = tmp_path / "other.yaml"
    other.write_text("storage: {kind: influxdb1, url: 5, databse: x}\n", encoding="utf-8")
    code, out, err = check(capsys, path, INVENTORY, other)
    assert code == 2
    assert out == [f"{INVENTORY}: ok (inventory)"]
    assert sorted(err) == sorted([
        f"{path}: mqtt.port: Input should be greater than or equal to 1",
        f"{path}: mqtt.colour: unknown key",
        f"{other}: storage.influxdb1.url: Input should be a valid string",
        f"{other}: storage.influxdb1.databse: unknown key",
    ])


def test_subprocess(tmp_path: Path) -> None:
    """python -m schoolmon check-config: exit codes and streams as a user sees them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLMON_")}
    cmd = [sys.executable, "-m", "schoolmon", "check-config"]
    ok = subprocess.run([*cmd, str(AGENT), str(COLLECTOR), str(INVENTORY)],
                        env={**env, **SECRETS}, capture_output=True, text=True, cwd=tmp_path,
                        timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"{AGENT}: ok (agent)", f"{COLLECTOR}: ok (collector)",
                                      f"{INVENTORY}: ok (inventory)"]
    assert ok.stderr == ""

    broken = tmp_path / "broken.yaml"
    broken.write_text("agent: {id: a, school: b, district: c, nickname: x}\n",
                      encoding="utf-8")
    bad = subprocess.run([*cmd, str(AGENT), str(broken)], env=env, capture_output=True,
                         text=True, cwd=tmp_path, timeout=60, check=False)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        f"{AGENT}: mqtt.password: environment variable SCHOOLMON_MQTT_PASSWORD is not set",
        f"{AGENT}: probes.3.snmp.targets.0.community: environment variable "
        "SCHOOLMON_SNMP_COMMUNITY is not set",
        f"{AGENT}: probes.3.snmp.targets.1.auth_key: environment variable "
        "SCHOOLMON_SNMP_AUTH_KEY is not set",
        f"{AGENT}: probes.4.ssh.targets.0.password: environment variable "
        "SCHOOLMON_SSH_PASSWORD is not set",
        f"{broken}: agent.nickname: unknown key",
    ]


def test_profile_naming_an_unknown_attribute(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    """A policy rule filtering on an attribute the inventory does not have: one line, exit 2."""
    profile = variant(tmp_path, CONFIGS / "policies" / "cn-moe-13fyp.yaml",
                      "applies_to: {category: [rural], qualified: true}",
                      "applies_to: {category: [rural], conditions: true}", "mine.yaml")
    code, out, err = check(capsys, profile)
    assert (code, out) == (2, [])
    assert err == [f"{profile}: rules.3.applies_to.conditions: unknown key"]


def test_collector_inventory_lacking_what_a_policy_needs(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, secrets: None) -> None:
    """collector.yaml's inventory against its policies: a school without the region a rule of
    cn-moe-13fyp needs is named, with the attribute (exit 2)."""
    variant(tmp_path, INVENTORY, "{id: yn-zy, name: 昭阳区, region: west}",
            "{id: yn-zy, name: 昭阳区}", "inventory.example.yaml")
    collector = tmp_path / "collector.yaml"
    collector.write_text(COLLECTOR.read_text(encoding="utf-8"), encoding="utf-8")
    code, out, err = check(capsys, collector)
    assert (code, out) == (2, [])
    assert err == [f"{tmp_path / 'inventory.example.yaml'}: schools.3.region: school "
                   "'yn-zy-012' has no region, which rule cn-moe-13fyp/wireless_campus needs "
                   "(applies_to); set it on the school or its district"]


def test_no_secrets_lists_each_unresolved_secret_and_passes(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """On a control node without the secrets: one line per secret, with its path; exit 0."""
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    code, _, err = check(capsys, AGENT, COLLECTOR)
    assert code == 2 and any("SCHOOLMON_MQTT_PASSWORD" in line for line in err)  # default strict
    code = main(["check-config", "--no-secrets", str(AGENT), str(COLLECTOR)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    secret_lines = [line for line in out.splitlines() if "(secret not checked)" in line]
    assert f"{AGENT}: mqtt.password: environment variable SCHOOLMON_MQTT_PASSWORD is not set " \
           "(secret not checked)" in secret_lines
    assert any(line.startswith(f"{COLLECTOR}: alerts.smtp.password:") for line in secret_lines)
    assert len(secret_lines) == len(set(secret_lines)) >= 4
    assert f"{AGENT}: ok (agent)" in out.splitlines()


def test_no_secrets_still_reports_everything_else(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """--no-secrets relaxes only the secrets: a real mistake is still exit 2."""
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    bad = variant(tmp_path, AGENT, "\nmqtt:\n", "\nmqtt:\n  bogus_key: 1\n")
    code = main(["check-config", "--no-secrets", str(bad)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines() == [f"{bad}: mqtt.bogus_key: unknown key"]
