"""Deployment closed by default: InfluxDB with authentication and least-privilege users (a real
InfluxDB with auth on, set up by the role's own InfluxQL), no secret on a command line, the
Windows install folder locked, spool files 0600 whatever the umask."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import jinja2
import orjson
import pytest
import yaml

from agent.spool import Spool
from tests.conftest import ROOT, SERVICES

ROLE = ROOT / "ansible" / "roles" / "influxdb"
ADMIN, COLLECTOR, GRAFANA = ("admin", "admin-1"), ("collector", "co'll-2"), ("grafana", "gr\\af-3")


def role_defaults(**override: object) -> dict[str, object]:
    """The influxdb role's defaults, with overrides."""
    return {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()), **override}


def render(name: str, variables: dict[str, object]) -> str:
    """One of the role's templates, as Ansible renders it (its filters are Jinja's own)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"),
                             undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in (
        "true", "yes", "on", "1")  # Ansible's
    return env.get_template(name).render(ansible_managed="managed", **variables)


@pytest.fixture(scope="module")
def influx_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """InfluxDB 1.x with authentication on (scripts/services.sh INFLUXDB_AUTH); its URL."""
    d = tmp_path_factory.mktemp("influx-auth")
    env = {**os.environ, "INFLUXDB_AUTH": f"{ADMIN[0]}:{ADMIN[1]}"}
    out = subprocess.run(["bash", str(SERVICES), "start", str(d), "influxdb"], env=env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    urls = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    yield urls["INFLUXDB_URL"]
    subprocess.run(["bash", str(SERVICES), "stop", str(d), "influxdb"], check=True)


def query(url: str, who: tuple[str, str] | None, q: str, db: str = "") -> tuple[int, str]:
    """POST /query as ``who``; (status, body)."""
    data = urllib.parse.urlencode({"q": q, "db": db}).encode()
    req = urllib.request.Request(f"{url}/query", data=data)
    if who is not None:
        req.add_header("Authorization", "Basic " + b64encode(f"{who[0]}:{who[1]}".encode())
                       .decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def write(url: str, who: tuple[str, str] | None, db: str) -> int:
    """One line-protocol point as ``who``; the HTTP status."""
    req = urllib.request.Request(f"{url}/write?db={db}", data=b"probe value=1")
    if who is not None:
        req.add_header("Authorization", "Basic " + b64encode(f"{who[0]}:{who[1]}".encode())
                       .decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.integration
def test_influxdb_users_have_least_privilege(influx_auth: str) -> None:
    """The role's InfluxQL, run as the admin: the collector writes and reads, Grafana only
    reads, nobody without credentials does anything (passwords with quotes included)."""
    q = render("v1-setup.influxql.j2", role_defaults(
        influxdb_database="sec", influxdb_collector_password=COLLECTOR[1],
        influxdb_grafana_password=GRAFANA[1]))
    status, body = query(influx_auth, ADMIN, q)
    assert status == 200 and '"error"' not in body, body
    assert write(influx_auth, COLLECTOR, "sec") == 204
    assert query(influx_auth, COLLECTOR, "SELECT * FROM probe", "sec")[0] == 200
    assert write(influx_auth, GRAFANA, "sec") == 403
    status, body = query(influx_auth, GRAFANA, "SELECT * FROM probe", "sec")
    assert status == 200 and orjson.loads(body)["results"][0]["series"]
    assert query(influx_auth, GRAFANA, 'DROP DATABASE "sec"')[0] == 403
    assert write(influx_auth, None, "sec") == 401
    assert query(influx_auth, None, "SHOW DATABASES")[0] == 401


def test_influxdb_unit_turns_auth_on_and_binds_loopback() -> None:
    """The 1.x drop-in from the defaults: auth on, HTTP and RPC on 127.0.0.1."""
    text = render("schoolmon.conf.j2", role_defaults())
    assert "INFLUXDB_HTTP_AUTH_ENABLED=true" in text
    assert "INFLUXDB_HTTP_BIND_ADDRESS=127.0.0.1:8086" in text
    assert "INFLUXDB_BIND_ADDRESS=127.0.0.1:8088" in text


@pytest.mark.parametrize("tasks", ["influxdb/tasks/v1.yml", "influxdb/tasks/v2.yml",
                                   "mosquitto/tasks/main.yml", "grafana/tasks/main.yml"])
def test_no_secret_on_a_command_line(tasks: str) -> None:
    """No command's argv names a password or token variable (ps shows argv to every user)."""
    for task in yaml.safe_load((ROOT / "ansible" / "roles" / tasks).read_text()):
        for module in ("ansible.builtin.command", "ansible.builtin.shell"):
            args = task.get(module)
            if args is not None:
                text = str(args.get("argv", args.get("cmd", args)))
                variables = re.findall(r"\{\{(.*?)\}\}", text)
                assert not [v for v in variables if "password" in v or "token" in v], task["name"]


def test_windows_install_folder_is_locked_before_the_venv_is_made() -> None:
    """ACLs protected (no inheritance from ProgramData) on the install, secrets and spool
    folders, users read-only on the install folder, before the venv exists."""
    play = yaml.safe_load((ROOT / "ansible" / "windows-classroom.yml").read_text())[0]
    names = [t["name"] for t in play["tasks"]]
    lock = next(t for t in play["tasks"] if t["name"].startswith("Restrict the install"))
    assert names.index(lock["name"]) < names.index("Create the virtual environment")
    script = lock["ansible.windows.win_powershell"]["script"]
    assert "SetAccessRuleProtection($true, $false)" in script
    assert "'BUILTIN\\Users', 'ReadAndExecute'" in script and "Everyone" not in script
    assert {i["path"] for i in lock["loop"]} == {
        "{{ schoolmon_win_dir }}", "{{ schoolmon_agent_secrets_dir }}",
        "{{ schoolmon_agent_state }}"}


def test_spool_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Started by hand with umask 022: database, WAL, shared memory and reserve are 0600."""
    old = os.umask(0o022)
    try:
        spool = Spool(tmp_path / "spool" / "spool.db", 1 << 20, 3600).open()
        spool.append(b"[]", 1)
    finally:
        os.umask(old)
    files = sorted((tmp_path / "spool").iterdir())
    assert {p.name for p in files} >= {"spool.db", "spool.db-wal", "spool.db-shm"}
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {
        p.name: "0o600" for p in files}
