"""windows-classroom.yml: what can be checked without a Windows PC or the ansible.windows
collection (neither is here; docs/deploy.md, "Windows classroom PCs", lists what is not).

The play's own checks (identity, release in the artifact store, MQTT password, probe
secrets) are ansible.builtin and run for real here, with the example inventory, followed by
the role's agent.yaml template rendered with the Windows group's variables; the rendered config
passes `schoolmon check-config`.  The Windows tasks are checked at the text level: the
release is the copied wheel (no name from an index), the install folder's ACL, the scheduled
task's restart settings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import schoolmon_cmd

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
PLAYBOOK = ANSIBLE / "windows-classroom.yml"
TEMPLATE = ANSIBLE / "roles" / "schoolmon_agent" / "templates" / "agent.yaml.j2"
EXAMPLE = ANSIBLE / "inventory" / "example"
WIN_VARS = EXAMPLE / "group_vars" / "windows_classroom_pcs" / "main.yml"
BIN = Path(sys.executable).parent
PC = "gz-th-001-pc302"          # the example's Windows PC
VERSION = "0.3.1"
KNOWN_WINDOWS = {"win_package", "win_file", "win_powershell", "win_command", "win_copy",
                 "win_template", "win_service", "win_acl"}  # all in ansible.windows


def _play() -> dict[str, Any]:
    plays = yaml.safe_load(PLAYBOOK.read_text())
    assert isinstance(plays, list) and len(plays) == 1
    play: dict[str, Any] = plays[0]
    return play


def _module(task: dict[str, Any]) -> str:
    modules = [k for k in task if k.startswith("ansible.")]
    assert len(modules) == 1, task["name"]
    return modules[0]


def _example_hosts() -> dict[str, Any]:
    hosts: dict[str, Any] = yaml.safe_load((EXAMPLE / "hosts.yml").read_text())
    return hosts


def test_modules_and_checks_first() -> None:
    """Only ansible.windows modules on the PC; the input checks (ansible.builtin.assert) all
    come before the first task that changes anything."""
    play = _play()
    assert play["hosts"] == "windows_classroom_pcs"
    names = [_module(t) for t in play["tasks"]]
    first_windows = next(i for i, n in enumerate(names) if n.startswith("ansible.windows."))
    assert first_windows >= 4
    assert set(names[:first_windows]) == {"ansible.builtin.assert"}
    for name in names[first_windows:]:
        namespace, _, module = name.rpartition(".")
        assert namespace == "ansible.windows" and module in KNOWN_WINDOWS, name


def test_release_is_the_copied_wheel_never_a_name_from_an_index() -> None:
    """pip installs only the wheel copied from the artifact store, pinned to schoolmon_version."""
    text = PLAYBOOK.read_text()
    assert "schoolmon[agent]" not in text and "pip_package" not in text
    play = _play()
    pips = [t for t in play["tasks"] if "pip" in json.dumps(t.get("ansible.windows.win_command"))]
    assert [t["name"] for t in pips] == ["Install exactly release {{ schoolmon_win_release }}"]
    argv = pips[0]["ansible.windows.win_command"]["argv"]
    assert "schoolmon_win_wheel_dest ~ '[agent]'" in argv and "'install'" in argv
    assert pips[0]["when"] == "schoolmon_win_installed.stdout | trim != schoolmon_win_release"
    copy = next(t for t in play["tasks"] if t["name"].startswith("Copy the release wheel"))
    assert copy["ansible.windows.win_copy"] == {"src": "{{ schoolmon_win_wheel_src }}",
                                                "dest": "{{ schoolmon_win_wheel_dest }}"}
    # The same variables as the Linux role.
    assert "schoolmon_version" in play["vars"]["schoolmon_win_release"]
    assert "schoolmon_artifact_dir" in play["vars"]["schoolmon_win_artifacts"]
    assert play["vars"]["schoolmon_win_wheel"] == \
        "schoolmon-{{ schoolmon_win_release }}-py3-none-any.whl"


def test_settings_are_inventory_variables_with_defaults_in_the_example() -> None:
    """Every variable the play and the template read is a derived play var, a registered
    result, or defined in the example inventory for the Windows group (no play var an
    installer must edit)."""
    play = _play()
    text = PLAYBOOK.read_text() + TEMPLATE.read_text()
    used = set(re.findall(r"\b(schoolmon_\w+|ansible_\w+|vault_\w+)\b", text))
    registered = {t["register"] for t in play["tasks"] if "register" in t}
    inventory: dict[str, Any] = {}
    for path in (EXAMPLE / "group_vars" / "all.yml", WIN_VARS):
        inventory |= yaml.safe_load(path.read_text())
    hosts = _example_hosts()
    school = hosts["all"]["children"]["schoolmon_agents"]["children"]["district_gz_th"]
    inventory |= school["vars"] | school["children"]["school_gz_th_001"]["vars"]
    inventory |= school["children"]["school_gz_th_001"]["hosts"][PC]
    # Optional with a default in the play, or names of the playbook's text that are not
    # variables (the role's and a group's name in paths and comments).
    optional = {"schoolmon_agent_version", "schoolmon_artifact_dir",
                "schoolmon_agent_mqtt_password_src", "ansible_managed", "schoolmon_agent",
                "schoolmon_servers",
                # defaults in the template: the role from schoolmon_agent_classroom, no servers
                "schoolmon_agent_role", "schoolmon_agent_mqtt_servers"}
    missing = sorted(used - set(play["vars"]) - registered - set(inventory) - optional)
    assert missing == []
    settings = {"schoolmon_win_dir", "schoolmon_win_python", "schoolmon_win_python_installer",
                "schoolmon_agent_probes", "schoolmon_win_av_devices", "schoolmon_win_pip_args",
                "schoolmon_agent_spool_max_mb", "schoolmon_win_task_name"}
    assert settings <= set(inventory) and not settings & set(play["vars"])
    win = yaml.safe_load(WIN_VARS.read_text())
    assert win["ansible_connection"] == "winrm" and win["ansible_port"] == 5986
    assert win["ansible_winrm_transport"] in ("ntlm", "kerberos")
    assert win["ansible_winrm_server_cert_validation"] == "validate"
    assert win["ansible_password"] == "{{ vault_windows_winrm_password }}"


def test_install_folder_acl_and_restart_settings() -> None:
    """The install folder stays writable by SYSTEM and Administrators only; the task restarts
    a dead agent (launcher loop, restart on failure, repetition with IgnoreNew)."""
    tasks = {t["name"]: t for t in _play()["tasks"]}
    acl = tasks["Restrict the install, secrets and spool folders to SYSTEM and Administrators"]
    script = acl["ansible.windows.win_powershell"]["script"]
    assert "SetAccessRuleProtection($true, $false)" in script
    assert "@('BUILTIN\\Users', 'ReadAndExecute')" in script
    assert [(i["path"], i["users_read"]) for i in acl["loop"]] == [
        ("{{ schoolmon_win_dir }}", True), ("{{ schoolmon_agent_secrets_dir }}", False),
        ("{{ schoolmon_agent_state }}", False)]
    order = list(tasks)
    assert order.index(acl["name"]) < order.index("Create the virtual environment")
    task = tasks["Register the agent's scheduled task (at startup, as SYSTEM, restarted when "
                 "it stops)"]["ansible.windows.win_powershell"]
    for needle in ("-RestartCount $RestartCount",
                   "-RestartInterval (New-TimeSpan -Minutes $RestartMinutes)",
                   "-MultipleInstances IgnoreNew", "-RepetitionInterval",
                   "-ExecutionTimeLimit ([TimeSpan]::Zero)", "-UserId 'SYSTEM'"):
        assert needle in task["script"], needle
    launcher = tasks["Write the launcher (reads the secrets, runs the agent, restarts it when "
                     "it exits)"]["ansible.windows.win_copy"]["content"]
    assert "while ($true)" in launcher and "agent', 'run'" in launcher
    # pip must not run under a running agent (Windows locks schoolmon.exe).
    assert order.index("Stop the agent before changing its release") < \
        order.index("Install exactly release {{ schoolmon_win_release }}")


def _run_checks_and_render(tmp_path: Path, extra: dict[str, Any],
                           wheel: bool = True) -> subprocess.CompletedProcess[str]:
    """The play's checks and the agent.yaml template, for the example's Windows PC, locally."""
    play = _play()
    checks = [t for t in play["tasks"] if _module(t) == "ansible.builtin.assert"]
    out = tmp_path / "out"
    local = [{"name": "The Windows play's checks and agent.yaml, rendered locally",
              "hosts": "windows_classroom_pcs", "gather_facts": False, "vars": play["vars"],
              "tasks": [*checks, {"name": "Render agent.yaml", "ansible.builtin.template": {
                  "src": str(TEMPLATE), "dest": f"{out}/{{{{ inventory_hostname }}}}.yaml",
                  "mode": "0600"}, "delegate_to": "localhost"}]}]
    (tmp_path / "local.yml").write_text(yaml.safe_dump(local, sort_keys=False))
    (tmp_path / "secrets" / "mqtt").mkdir(parents=True)
    (tmp_path / "secrets" / "mqtt" / f"{PC}.password").write_text("agent-secret-1\n")
    store = tmp_path / "dist"
    store.mkdir()
    if wheel:
        (store / f"schoolmon-{VERSION}-py3-none-any.whl").write_bytes(b"PK\x05\x06" + bytes(18))
    out.mkdir()
    variables = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "schoolmon_version": VERSION, "schoolmon_artifact_dir": str(store),
                 "vault_windows_winrm_password": "unused-here", **extra}
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg")}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(EXAMPLE / "hosts.yml"), "-e", "@vars.json",
         "--limit", PC, "local.yml"], cwd=tmp_path, capture_output=True, text=True,
        timeout=300, env=env, check=False)


def test_rendered_agent_config_passes_check_config(tmp_path: Path) -> None:
    """The example PC's agent.yaml, rendered with its inventory variables, is valid and has
    its own projector (PJLink, password from the environment), panel and the netsh wifi."""
    result = _run_checks_and_render(tmp_path, {"vault_pjlink_password": "pjlink-secret-1"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "pjlink-secret-1" not in result.stdout + result.stderr
    rendered = tmp_path / "out" / f"{PC}.yaml"
    config = yaml.safe_load(rendered.read_text())
    assert config["agent"] == {"id": PC, "school": "gz-th-001", "district": "gz-th",
                               "role": "classroom_pc"}
    assert config["mqtt"]["password_env"] == "SCHOOLMON_MQTT_PASSWORD"
    assert config["mqtt"]["tls"] == {"ca_file": "C:/ProgramData/schoolmon/ca.crt"}
    assert config["spool"]["path"] == "C:/ProgramData/schoolmon/spool/spool.db"
    probes = {p["type"]: p for p in config["probes"]}
    assert probes["av"]["devices"] == [
        {"name": "proj-302", "device_type": "projector", "host": "192.168.3.20",
         "method": "pjlink", "password_env": "SCHOOLMON_PJLINK_PASSWORD", "classroom": "302"},
        {"name": "panel-302", "device_type": "panel", "host": "192.168.3.21", "method": "icmp",
         "classroom": "302"}]
    assert probes["wifi"]["method"] == "netsh" and probes["wifi"]["classroom"] == "302"
    check = subprocess.run(schoolmon_cmd("check-config", str(rendered)), capture_output=True,
                           text=True, check=False,
                           env={**os.environ, "SCHOOLMON_MQTT_PASSWORD": "x",
                                "SCHOOLMON_PJLINK_PASSWORD": "y"})
    assert check.returncode == 0, check.stdout + check.stderr
    assert ": ok (" in check.stdout


def test_a_broker_cluster_is_rendered_as_mqtt_servers(tmp_path: Path) -> None:
    """schoolmon_agent_mqtt_servers: the nodes go to mqtt.servers (no host), a valid config."""
    result = _run_checks_and_render(tmp_path, {
        "vault_pjlink_password": "p",
        "schoolmon_agent_mqtt_servers": ["mqtt1.district.example:8883", "mqtt2.district.example"]})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    rendered = tmp_path / "out" / f"{PC}.yaml"
    mqtt = yaml.safe_load(rendered.read_text())["mqtt"]
    assert mqtt["servers"] == ["mqtt1.district.example:8883", "mqtt2.district.example"]
    assert "host" not in mqtt
    check = subprocess.run(schoolmon_cmd("check-config", str(rendered)), capture_output=True,
                           text=True, check=False,
                           env={**os.environ, "SCHOOLMON_MQTT_PASSWORD": "x",
                                "SCHOOLMON_PJLINK_PASSWORD": "y"})
    assert check.returncode == 0, check.stdout + check.stderr


def test_default_av_devices_follow_the_addressing_plan(tmp_path: Path) -> None:
    """Without a per-PC list, the room's projector and panel come from its classroom."""
    result = _run_checks_and_render(tmp_path, {
        "schoolmon_win_av_devices": yaml.safe_load(WIN_VARS.read_text())[
            "schoolmon_win_av_devices"], "schoolmon_win_secret_env": {}})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    config = yaml.safe_load((tmp_path / "out" / f"{PC}.yaml").read_text())
    av = next(p for p in config["probes"] if p["type"] == "av")
    assert [(d["name"], d["host"], d["method"]) for d in av["devices"]] == [
        ("proj-302", "192.168.3.10", "pjlink"), ("panel-302", "192.168.3.11", "icmp")]


@pytest.mark.parametrize(("case", "extra", "wheel", "line"), [
    ("release not in the store", {"vault_pjlink_password": "p"}, False,
     f"schoolmon {VERSION} is not in the artifact store"),
    ("vault variable missing", {}, True,
     "schoolmon_win_secret_env has no value for SCHOOLMON_PJLINK_PASSWORD"),
])
def test_bad_input_stops_before_anything(tmp_path: Path, case: str, extra: dict[str, Any],
                                         wheel: bool, line: str) -> None:
    """A missing release or vault variable: one clear line, nothing rendered."""
    result = _run_checks_and_render(tmp_path, extra, wheel=wheel)
    assert result.returncode != 0, case
    assert line in result.stdout, result.stdout[-4000:]
    assert not list((tmp_path / "out").iterdir()), case
