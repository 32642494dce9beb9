"""Pinned releases through the agent role: install A, upgrade to B, check, downgrade, refuse C.

Two wheels with different versions are built by the real `make dist` (tests/integration/
release.py); the schoolmon_agent role installs them into a temporary root on localhost
(connection local, systemd switched off: the test restarts the agent the way the role's handler
would).  Between A and B the agent has batches in its spool that no collector has acked; after
the upgrade, B delivers every one of them to a real collector and InfluxDB, each agent sample
naming the release that measured it.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.runner import installed_version
from tests.conftest import Services, influx_rows, schoolmon_cmd, start_collector_process
from tests.integration.release import build_wheels

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
A, B = "1.0.0", "1.1.0"
AGENT = "gz-th-001-gw"


def playbook(play: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of the agent role on localhost, with the test's variables."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_ROLES_PATH": str(ROOT / "ansible/roles"),
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "hosts.yml", "-e", "@vars.json",
                           *args, "agent.yml"], cwd=play, capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def recap_changed(result: subprocess.CompletedProcess[str]) -> int:
    """The `changed=` count of localhost in the play recap."""
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("localhost "))
    return int(line.split("changed=")[1].split()[0])


def installed(root: Path) -> str:
    """What `schoolmon --version` of the role's venv says."""
    result = subprocess.run([root / "opt/schoolmon/agent/venv/bin/schoolmon", "--version"],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def run_agent_once(root: Path, timeout: float) -> int:
    """The installed agent, `--once`: every probe once, exit 0 only when all was acked."""
    return subprocess.run([root / "opt/schoolmon/agent/venv/bin/schoolmon", "agent", "run",
                           "--once", "--timeout", str(timeout), "-c",
                           root / "etc/schoolmon/agent/agent.yaml"], capture_output=True,
                          check=False, timeout=timeout + 60).returncode


def spool_depth(path: Path) -> int:
    """Batches waiting for an ack."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM batch").fetchone()[0])


def old_layout_spool(play: Path, root: Path, variables: dict[str, Any]) -> Path:
    """A spool where releases before the per-role layout kept it, with unacked batches."""
    old_spool = root / "var/lib/schoolmon/spool.db"
    old_spool.parent.mkdir(parents=True)
    old_yaml = play / "old-agent.yaml"
    old_yaml.write_text(yaml.safe_dump({
        "agent": {"id": AGENT, "school": "gz-th-001", "district": "gz-th"},
        "mqtt": {"host": "127.0.0.1", "port": variables["schoolmon_agent_mqtt_port"],
                 "topic_prefix": variables["schoolmon_agent_mqtt_topic_prefix"]},
        "spool": {"path": str(old_spool)}, "probes": [{"type": "host", "interval": "60s"}]}))
    old = subprocess.run(schoolmon_cmd("agent", "run", "--once", "--timeout", "1", "-c",
                                       str(old_yaml)), capture_output=True, check=False)
    assert old.returncode == 1 and spool_depth(old_spool) >= 1
    return old_spool


@pytest.fixture(scope="module")
def play(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A play directory: the artifact store with A and B, inventory, variables, playbook."""
    base = tmp_path_factory.mktemp("rollout")
    store = base / "dist"
    build_wheels([A, B], store, base)
    play = base / "play"
    (play / "secrets/mqtt").mkdir(parents=True)
    (play / f"secrets/mqtt/{AGENT}.password").write_text("agent-secret-1\n")
    (play / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    (play / "agent.yml").write_text(yaml.safe_dump([{
        "name": "A school gateway's agent, into a temporary root", "hosts": "localhost",
        "gather_facts": False, "become": False, "roles": ["schoolmon_agent"]}]))
    variables: dict[str, Any] = {
        "schoolmon_artifact_dir": str(store), "schoolmon_version": A,
        "schoolmon_agent_root": str(base / "root"),
        "schoolmon_agent_user": pwd.getpwuid(os.getuid()).pw_name,
        "schoolmon_agent_group": grp.getgrgid(os.getgid()).gr_name,
        "schoolmon_agent_manage_user": False, "schoolmon_agent_install_packages": False,
        "schoolmon_agent_manage_service": False, "schoolmon_agent_python": sys.executable,
        # Only to save the test time: no .pyc compiled for the dependencies.
        "schoolmon_agent_pip_args": ["--no-compile"],
        "schoolmon_agent_id": AGENT, "schoolmon_agent_school": "gz-th-001",
        "schoolmon_agent_district": "gz-th",
        "schoolmon_agent_mqtt_host": "127.0.0.1",
        "schoolmon_agent_mqtt_port": services.mqtt_port,
        "schoolmon_agent_mqtt_topic_prefix": f"t{uuid.uuid4().hex[:10]}/v1",
        "schoolmon_agent_probes": [{"type": "host", "interval": "60s"}],
    }
    (play / "vars.json").write_text(json.dumps(variables))
    return play


def test_install_upgrade_check_downgrade_keep_the_spool(
        play: Path, services: Services, influx_db: str) -> None:
    """A, then B with A's unacked spool delivered by B; --check idle; back to A; C refused."""
    variables = json.loads((play / "vars.json").read_text())
    root = Path(variables["schoolmon_agent_root"])
    spool = root / "var/lib/schoolmon/agent/spool.db"

    # An agent of the earlier shared layout measured with nobody acking: the role moves its
    # spool, and nothing in it is lost either.
    old_spool = old_layout_spool(play, root, variables)

    first = playbook(play)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert installed(root) == f"schoolmon {A}"
    assert "agent-secret-1" not in first.stdout + first.stderr
    assert not old_spool.exists() and spool_depth(spool) >= 1

    # A measures with no collector listening: its batches stay in the spool, unacked.
    assert run_agent_once(root, timeout=1) == 1
    waiting = spool_depth(spool)
    assert waiting >= 1
    before = hashlib.sha256(spool.read_bytes()).hexdigest()

    upgrade = playbook(play, "-e", f"schoolmon_version={B}")
    assert upgrade.returncode == 0, upgrade.stdout[-4000:] + upgrade.stderr[-2000:]
    assert installed(root) == f"schoolmon {B}"
    assert f"TASK [schoolmon_agent : Install exactly release {B}]" in upgrade.stdout
    assert "RUNNING HANDLER [schoolmon_agent : Restart schoolmon-agent]" in upgrade.stdout
    assert hashlib.sha256(spool.read_bytes()).hexdigest() == before  # spool untouched

    check = playbook(play, "-e", f"schoolmon_version={B}", "--check")
    assert check.returncode == 0, check.stdout[-4000:]
    assert recap_changed(check) == 0, check.stdout[-4000:]

    # The restart the handler asks for, done by hand (no systemd here): B delivers A's batches.
    collector = play / "collector.yaml"
    agent_yaml = yaml.safe_load((root / "etc/schoolmon/agent/agent.yaml").read_text())
    collector.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "username": None,
                 "topic_prefix": agent_yaml["mqtt"]["topic_prefix"],
                 "client_id": "rollout-collector", "session_expiry": "1h"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": influx_db},
        "write": {"flush_interval": "100ms"}}))
    proc = start_collector_process(collector)
    try:
        assert run_agent_once(root, timeout=30) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert spool_depth(spool) == 0
    rows = influx_rows(services.influx_url, influx_db,
                       f"SELECT version, config_hash, started_s FROM agent WHERE agent = '{AGENT}'")
    assert sorted(str(r["version"]) for r in rows) == sorted([installed_version(), A, B])
    assert len({r["config_hash"] for r in rows[1:]}) == 1  # the role's agent.yaml, A and B
    hosts = influx_rows(services.influx_url, influx_db,
                        f"SELECT uptime_s FROM host WHERE agent = '{AGENT}'")
    assert len(hosts) == 3  # the old layout's, A's (both spooled across the upgrade) and B's

    downgrade = playbook(play, "-e", f"schoolmon_version={A}")
    assert downgrade.returncode == 0, downgrade.stdout[-4000:]
    assert installed(root) == f"schoolmon {A}"

    missing = playbook(play, "-e", "schoolmon_version=9.9.9")
    assert missing.returncode != 0
    assert "schoolmon 9.9.9 is not in the artifact store" in missing.stdout
    assert recap_changed(missing) == 0
    assert installed(root) == f"schoolmon {A}"
