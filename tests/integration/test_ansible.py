"""The Ansible roles: lint (production profile), syntax, and a real local run into a temp root.

The local run applies influxdb (against the test InfluxDB), schoolmon_collector, mosquitto
(running the real `schoolmon broker-config`), grafana and schoolmon_agent to localhost with
every path under a temporary root and package/user/systemd actions switched off, each
schoolmon role installing the wheel `make dist` built; the collector and the agent share the
host, each with its own paths.  Then the rendered configs pass `schoolmon check-config` and the
rendered units `systemd-analyze verify`.  Upgrades and downgrades: test_rollout.py.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Services, influx_rows, schoolmon_cmd, wait_until
from tests.integration.release import build_wheel

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent
EXAMPLE_VARS = ANSIBLE / "inventory" / "example" / "group_vars"
VERSION = "0.0.1"


def _run(*argv: str | Path, cwd: Path = ANSIBLE, timeout: float = 300,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
                "NO_COLOR": "1", "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env, check=False)


def test_ansible_lint_production_profile_is_clean() -> None:
    """ansible-lint with the production profile passes on every role and playbook."""
    result = _run(BIN / "ansible-lint", "-c", ".ansible-lint", ".")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_site_playbook_syntax() -> None:
    """ansible-playbook --syntax-check site.yml with the example inventory."""
    result = _run(BIN / "ansible-playbook", "--syntax-check", "-i",
                  "inventory/example/hosts.yml", "site.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_windows_playbook_uses_only_ansible_windows_modules() -> None:
    """The Windows playbook (not linted: the collection is not installed) names real modules:
    its input checks (ansible.builtin.assert, on the control node) and then ansible.windows
    only.  More in tests/unit/test_windows_playbook.py (its checks run, agent.yaml rendered)."""
    known = {"win_package", "win_file", "win_powershell", "win_command", "win_copy",
             "win_template", "win_service", "win_acl"}  # all in ansible.windows
    play = yaml.safe_load((ANSIBLE / "windows-classroom.yml").read_text())[0]
    assert play["hosts"] == "windows_classroom_pcs"
    checks = True
    for task in play["tasks"]:
        modules = [k for k in task if k.startswith("ansible.")]
        assert len(modules) == 1, task["name"]
        checks = checks and modules[0] == "ansible.builtin.assert"
        if checks:
            continue
        namespace, _, module = modules[0].rpartition(".")
        assert namespace == "ansible.windows" and module in known, modules[0]
    assert not checks  # there are Windows tasks after the checks


def _tls(directory: Path) -> None:
    directory.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mqtt.test", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(directory / "mqtt.key"),
                    "-out", str(directory / "mqtt.crt")], check=True, capture_output=True)
    (directory / "ca.crt").write_bytes((directory / "mqtt.crt").read_bytes())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _extra_vars(root: Path, services: Services, database: str, store: Path) -> dict[str, Any]:
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    server = yaml.safe_load((EXAMPLE_VARS / "schoolmon_servers" / "main.yml").read_text())
    gateway = yaml.safe_load((EXAMPLE_VARS / "gateways.yml").read_text())
    out: dict[str, Any] = {
        "influxdb_install_packages": False, "influxdb_manage_service": False,
        "influxdb_url": services.influx_url, "influxdb_database": database,
        "influxdb_admin_password": "admin-secret-1", "influxdb_collector_password":
            "collector-influx-1", "influxdb_grafana_password": "grafana-influx-1",
        "grafana_root": str(root), "grafana_install_packages": False,
        "grafana_manage_service": False, "grafana_group": group,
        "grafana_schoolmon_src": str(ROOT / "dashboards"),
        "mosquitto_root": str(root), "mosquitto_install_packages": False,
        "mosquitto_manage_service": False, "mosquitto_user": user, "mosquitto_group": group,
        "schoolmon_agent_id": "gz-th-001-gw", "schoolmon_agent_school": "gz-th-001",
        "schoolmon_agent_district": "gz-th", "schoolmon_agent_probes":
            gateway["schoolmon_agent_probes"],
        "schoolmon_agent_mqtt_ca_src": "{{ playbook_dir }}/secrets/tls/ca.crt",
        "schoolmon_collector_inventory": server["schoolmon_collector_inventory"],
        "schoolmon_collector_alerts": server["schoolmon_collector_alerts"],
        "schoolmon_collector_policies": server["schoolmon_collector_policies"],
        "schoolmon_collector_mqtt_password": "collector-secret-1",
        "schoolmon_collector_smtp_password": "smtp-secret-1",
        "schoolmon_collector_influx_url": services.influx_url,
        "schoolmon_collector_influx_database": database,
        # The mosquitto role finds the collector's venv and config by its defaults (site.yml
        # sets nothing); the agents' listener on loopback only.
        "mosquitto_listen_address": "127.0.0.1",
        # Enrolment on: its unit, certificate and broker account (enrol-admin).
        "schoolmon_enrol_enabled": True,
        "schoolmon_collector_enrol_listen": f"127.0.0.1:{_free_port()}",
        "schoolmon_version": VERSION, "schoolmon_artifact_dir": str(store),
        # Free ports, so the rendered broker can run beside the others on this machine.
        "mosquitto_local_port": (local := _free_port()), "mosquitto_tls_port": _free_port(),
        "schoolmon_collector_mqtt_port": local, "schoolmon_agent_mqtt_host": "127.0.0.1",
    }
    out["schoolmon_agent_mqtt_port"] = out["mosquitto_tls_port"]
    for role in ("agent", "collector"):
        out |= {f"schoolmon_{role}_root": str(root), f"schoolmon_{role}_user": user,
                f"schoolmon_{role}_group": group, f"schoolmon_{role}_manage_user": False,
                f"schoolmon_{role}_install_packages": False,
                f"schoolmon_{role}_manage_service": False,
                f"schoolmon_{role}_python": sys.executable,
                # Only to save the test time: no .pyc compiled for the dependencies.
                f"schoolmon_{role}_pip_args": ["--no-compile"]}
    return out


@pytest.fixture(scope="module")
def rendered(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the roles once into a temporary root; the root."""
    base = tmp_path_factory.mktemp("ansible")
    root, play = base / "root", base / "play"
    store = build_wheel(VERSION, base / "dist", base).parent
    _tls(play / "secrets" / "tls")
    database = "ansible_" + uuid.uuid4().hex[:8]
    (play / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": sys.executable}},
        "children": {"schoolmon_agents": {"hosts": {
            "gz-th-001-gw": {"schoolmon_agent_school": "gz-th-001"},
            "gz-th-001-pc301": {"schoolmon_agent_school": "gz-th-001",
                                "schoolmon_agent_classroom": "301"},
            "gz-th-tp-07-gw": {"schoolmon_agent_school": "gz-th-tp-07"}}}}}}))
    (play / "local.yml").write_text(yaml.safe_dump([{
        "name": "District server and a gateway agent, rendered into a temporary root",
        "hosts": "localhost", "gather_facts": False, "become": False,
        "roles": ["influxdb", "schoolmon_collector", "mosquitto", "grafana",
                  "schoolmon_agent"]}]))
    (play / "vars.json").write_text(json.dumps(_extra_vars(root, services, database, store)))
    result = _run(BIN / "ansible-playbook", "-i", "hosts.yml", "-e", "@vars.json", "local.yml",
                  cwd=play, env={"ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles")})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "collector-secret-1" not in result.stdout + result.stderr
    (root / "database").write_text(database)
    return root


def test_rendered_configs_pass_check_config(rendered: Path) -> None:
    """agent.yaml, collector.yaml and inventory.yaml as the roles wrote them are valid."""
    conf = rendered / "etc" / "schoolmon"
    files = [conf / "agent/agent.yaml", conf / "collector/collector.yaml",
             conf / "collector/inventory.yaml"]
    result = subprocess.run(schoolmon_cmd("check-config", *map(str, files)), capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok (") == 3
    inventory = yaml.safe_load((conf / "collector/inventory.yaml").read_text())
    assert {a["id"] for a in inventory["agents"]} == {"gz-th-001-gw", "gz-th-001-pc301",
                                                      "gz-th-tp-07-gw"}
    assert {"id": "gz-th-001-pc301", "school": "gz-th-001", "role": "classroom_pc",
            "classroom": "301"} in inventory["agents"]


def test_secrets_are_private_and_the_broker_knows_every_agent(rendered: Path) -> None:
    """0600 secret files; the generated password file has the collector and every agent."""
    conf = rendered / "etc" / "schoolmon"
    secrets = [*(conf / "agent/secrets").iterdir(), *(conf / "collector/secrets").iterdir()]
    for path in [*secrets, rendered / "etc/mosquitto/certs/server.key"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    generated = rendered / "etc" / "mosquitto" / "schoolmon"
    agent_password = (conf / "agent/secrets/mqtt.password").read_text().strip()
    assert (generated / "passwords" / "gz-th-001-gw.password").read_text().strip() == \
        agent_password
    assert {p.name for p in (generated / "passwords").iterdir()} == {
        "gz-th-001-gw.password", "gz-th-001-pc301.password", "gz-th-tp-07-gw.password"}


def test_fetched_passwords_private_and_listener_address(rendered: Path) -> None:
    """On the control node each fetched agent password is 0600 in a 0700 directory; the TLS
    listener binds mosquitto_listen_address."""
    fetched = rendered.parent / "play" / "secrets" / "mqtt"
    assert stat.S_IMODE(fetched.stat().st_mode) == 0o700
    files = sorted(fetched.iterdir())
    assert [p.name for p in files] == ["gz-th-001-gw.password", "gz-th-001-pc301.password",
                                       "gz-th-tp-07-gw.password"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    listeners = [line for line in (rendered / "etc/mosquitto/conf.d/schoolmon.conf")
                 .read_text().splitlines() if line.startswith("listener ")]
    assert len(listeners) == 2 and all(line.endswith(" 127.0.0.1") for line in listeners)


def test_collector_and_agent_share_the_host(rendered: Path) -> None:
    """Both roles on one host: each has its own config, secrets, state, venv and release."""
    conf = rendered / "etc" / "schoolmon"
    # The agent role once overwrote the collector's password here (issue 19).
    assert (conf / "collector/secrets/mqtt.password").read_text() == "collector-secret-1\n"
    assert (conf / "agent/secrets/mqtt.password").read_text().strip() not in (
        "", "collector-secret-1")
    assert not (conf / "secrets").exists()
    for role in ("agent", "collector"):
        assert (rendered / "var/lib/schoolmon" / role).is_dir()
        venv = rendered / "opt/schoolmon" / role / "venv"
        result = subprocess.run([venv / "bin/schoolmon", "--version"], capture_output=True,
                                text=True, check=False)
        assert result.stdout.strip() == f"schoolmon {VERSION}", (role, result)
        assert (rendered / "opt/schoolmon" / role / "releases" /
                f"schoolmon-{VERSION}-py3-none-any.whl").is_file()
    agent_yaml = yaml.safe_load((conf / "agent/agent.yaml").read_text())
    assert agent_yaml["agent"]["role"] == "gateway"  # publish.linger's gateway default
    assert agent_yaml["spool"]["path"] == str(rendered / "var/lib/schoolmon/agent/spool.db")
    collector_yaml = yaml.safe_load((conf / "collector/collector.yaml").read_text())
    assert collector_yaml["alerts"]["state_path"] == \
        str(rendered / "var/lib/schoolmon/collector/alerts.db")
    assert collector_yaml["rules"]["snapshot"] == \
        str(rendered / "var/lib/schoolmon/collector/rules-state.snapshot")


def test_collector_and_agent_on_one_host_both_connect(rendered: Path, services: Services) -> None:
    """The broker, collector and agent as the roles left them, run: both clients get in."""
    database = (rendered / "database").read_text()
    conf = rendered / "etc" / "mosquitto"
    main = rendered / "mosquitto.conf"
    main.write_text(f"include_dir {conf}/conf.d\nuser root\nlog_dest file {rendered}/mqtt.log\n")
    logs = {name: rendered / f"{name}.log" for name in ("collector", "agent")}
    procs = [subprocess.Popen(["mosquitto", "-c", str(main)], stderr=subprocess.DEVNULL)]
    try:
        port = yaml.safe_load((rendered / "etc/schoolmon/collector/collector.yaml").read_text())[
            "mqtt"]["port"]
        # Our broker's own log, not just an open port: the port was free when the roles ran,
        # and another test's broker could have taken it since.
        mqtt_log = rendered / "mqtt.log"
        wait_until(lambda: (mqtt_log.exists() and b" running" in mqtt_log.read_bytes())
                   or procs[0].poll() is not None, 15, "the rendered Mosquitto")
        assert procs[0].poll() is None and _port_open(port), mqtt_log.read_text()[-2000:]
        for role, config in (("collector", "collector/collector.yaml"),
                             ("agent", "agent/agent.yaml")):
            with logs[role].open("wb") as log:
                procs.append(subprocess.Popen(
                    [rendered / f"opt/schoolmon/{role}/venv/bin/schoolmon", role, "run", "-c",
                     rendered / "etc/schoolmon" / config], stderr=log))
            if role == "collector":
                wait_until(lambda: b"subscribed" in logs["collector"].read_bytes()
                           or procs[1].poll() is not None, 60, "the collector to subscribe")
                assert b"subscribed" in logs["collector"].read_bytes(), (
                    logs["collector"].read_text()[-3000:], mqtt_log.read_text()[-2000:])
        # The agent's samples went through the broker to the collector and into InfluxDB: each
        # connected with its own account and was allowed what it does.
        wait_until(lambda: bool(influx_rows(
            services.influx_url, database, 'SELECT * FROM "iface", "host", "agent" '
            "WHERE \"agent\" = 'gz-th-001-gw' LIMIT 1")), 60, "the agent's samples in InfluxDB")
        assert all(p.poll() is None for p in procs), {k: v.read_text()[-2000:]
                                                      for k, v in logs.items()}
        for log in logs.values():
            assert "Not authorized" not in log.read_text(), log.read_text()[-2000:]
        _enrol_through_the_rendered_unit(rendered, procs)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


def _enrol_through_the_rendered_unit(rendered: Path, procs: list[subprocess.Popen[bytes]]
                                     ) -> None:
    """The enrolment service as its unit runs it, with the account broker-config made: a
    token issued for an inventory agent gives it a password, kept for broker-config."""
    unit = (rendered / "etc/systemd/system/schoolmon-enrol.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    listen = argv[argv.index("--listen") + 1]
    state = Path(argv[argv.index("--state") + 1])
    log = rendered / "enrol.log"
    with log.open("wb") as out:
        procs.append(subprocess.Popen(argv, stderr=out))
    port = int(listen.rpartition(":")[2])
    wait_until(lambda: _port_open(port) or procs[-1].poll() is not None, 30,
               "the enrolment service")
    assert procs[-1].poll() is None, log.read_text()
    python = argv[0]
    issued = subprocess.run([python, "-m", "schoolmon.enrol", "issue", "--state", str(state),
                             "--agent", "gz-th-001-pc301", "--school", "gz-th-001",
                             "--district", "gz-th", "--ttl", "1h"],
                            capture_output=True, text=True, check=False, timeout=60)
    assert issued.returncode == 0, issued.stderr
    out_file = rendered / "enrolled.password"
    enrolled = subprocess.run([python, "-m", "schoolmon.enrol", "agent", "--url",
                               f"https://{listen}", "--ca",
                               str(rendered.parent / "play/secrets/tls/ca.crt"),
                               "--token-file", "-", "--out", str(out_file)],
                              input=issued.stdout, capture_output=True, text=True,
                              check=False, timeout=60)
    assert enrolled.returncode == 0, enrolled.stderr + log.read_text()[-2000:]
    assert "enrolled as gz-th-001-pc301" in enrolled.stdout
    assert (state / "passwords/gz-th-001-pc301.password").read_text() == out_file.read_text()


def test_enrolment_account_made_by_broker_config(rendered: Path) -> None:
    """schoolmon_enrol_enabled: broker-config made enrol-admin, whose password the enrolment
    service has (0600); its unit names it, the certificate and the state kept for the broker."""
    generated = rendered / "etc/mosquitto/schoolmon"
    state = json.loads((generated / "dynamic-security.json").read_text())
    assert "enrol-admin" in {c["username"] for c in state["clients"]}
    secrets = rendered / "etc/schoolmon/collector/secrets"
    password = (secrets / "enrol-admin.password").read_text()
    assert len(password.strip()) >= 24
    assert password == (generated / "enrol-admin.password").read_text()
    for name in ("enrol-admin.password", "enrol.crt", "enrol.key"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name
    unit = (rendered / "etc/systemd/system/schoolmon-enrol.service").read_text()
    for needle in (f"--admin-password-file {secrets}/enrol-admin.password",
                   f"--passwords-dir {rendered}/var/lib/schoolmon/collector/enrol/passwords",
                   "--admin-user enrol-admin", f"--cert {secrets}/enrol.crt"):
        assert needle in unit, needle


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def test_rendered_units_pass_systemd_analyze_verify(rendered: Path) -> None:
    """The agent and collector units verify; the agent unit has the confinement asked for."""
    units = rendered / "etc" / "systemd" / "system"
    agent_unit = (units / "schoolmon-agent.service").read_text()
    for line in ("AmbientCapabilities=CAP_NET_RAW", "CapabilityBoundingSet=CAP_NET_RAW",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=schoolmon/agent"):
        assert line in agent_unit.splitlines(), line
    for name in ("schoolmon-agent.service", "schoolmon-collector.service",
                 "schoolmon-enrol.service"):
        result = subprocess.run(["systemd-analyze", "verify", str(units / name)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, (name, result.stdout, result.stderr)
        assert name not in result.stderr, result.stderr  # no warning about our unit


def test_grafana_and_influxdb_roles(rendered: Path, services: Services) -> None:
    """Dashboards and provisioning installed; the database exists with its retention."""
    assert sorted(p.name for p in (rendered / "var/lib/grafana/dashboards/schoolmon").iterdir()) \
        == sorted(p.name for p in (ROOT / "dashboards" / "json").glob("*.json"))
    env = (rendered / "etc/grafana/schoolmon.env").read_text()
    assert "SCHOOLMON_INFLUX_DB=schoolmon" in env
    database = (rendered / "database").read_text()
    policies = influx_rows(services.influx_url, database, "SHOW RETENTION POLICIES")
    assert [(p["name"], p["duration"], p["default"]) for p in policies] == [
        ("autogen", "9600h0m0s", True)]
