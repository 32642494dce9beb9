"""Enrolment against a real Mosquitto with the dynamic-security plugin, over real HTTPS.

An agent posts its one-time token to the district's enrolment endpoint (TLS verified with the
district CA), receives its own broker account, and with it may publish its own data but not
another school's; the token cannot be used twice, an expired one is refused, each in one line.
"""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.brokerconfig import DYNSEC_PLUGIN, dynsec_config
from common.wire import AgentIdentity, Topics
from schoolmon.enrol import CONTROL, BrokerAdmin, TokenStore, agent_role_acls, make_server
from tests.conftest import schoolmon_cmd, wait_until
from tests.net import free_port, port_open

pytestmark = pytest.mark.integration

PREFIX = "schoolmon/v1"
ME = AgentIdentity("d1", "s1", "s1-gw")
OTHER = AgentIdentity("d1", "s2", "s2-gw")






@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """Mosquitto with the plugin: the collector's state plus an enrolment admin; its port."""
    state = dynsec_config(Topics(PREFIX), "collectors", "enrol-admin", "admin-secret", [])
    # The enrolment service's account may only use the plugin's control topic.
    control = f"{CONTROL}/#"
    state["roles"].append({"rolename": "enrol", "acls": [  # type: ignore[attr-defined]
        {"acltype": kind, "topic": control, "priority": 0, "allow": True}
        for kind in ("publishClientSend", "publishClientReceive", "subscribePattern")]})
    state["clients"][0]["roles"] = [{"rolename": "enrol"}]  # type: ignore[index]
    (tmp_path / "dynsec.json").write_text(json.dumps(state))
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(
        f"per_listener_settings false\nlistener {port} 127.0.0.1\nallow_anonymous false\n"
        f"plugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {tmp_path}/dynsec.json\n"
        f"log_dest file {tmp_path}/mosquitto.log\nuser root\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port), 15, "mosquitto")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    cert, key = tmp_path / "enrol.crt", tmp_path / "enrol.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def enrol_cli(url: str, ca: Path, token: str, out: Path) -> subprocess.CompletedProcess[str]:
    """The agent's side as a real process; the token through stdin, never the command line."""
    return subprocess.run(schoolmon_cmd("agent", "enrol", "--url", url,
                                        "--ca", str(ca), "--token-file", "-", "--out", str(out)),
                          input=token, capture_output=True, text=True, timeout=60, check=False)


def publish(port: int, who: AgentIdentity, password: str, topic: str) -> str:
    """QoS 1 publish with an agent's account; the PUBACK reason (or why it did not connect)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=who.agent,
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(who.agent, password)
    reasons: list[str] = []
    done = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            reasons.append(f"connect: {reason}")
            done.set()
        else:
            client.publish(topic, b"{}", qos=1)

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        reasons.append(str(reason))
        done.set()

    client.on_connect, client.on_publish = on_connect, on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no answer from the broker"
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


def test_enrol_gives_an_account_for_its_own_topics_once(
        broker: int, tls: tuple[Path, Path], tmp_path: Path) -> None:
    """Token -> own account (own data yes, other school no); reused and expired refused."""
    now = [1_800_000_000.0]
    store = TokenStore(tmp_path / "tokens.db", clock=lambda: now[0])
    assert stat.S_IMODE((tmp_path / "tokens.db").stat().st_mode) == 0o600
    token = store.issue(ME, ttl_s=3600)
    short = store.issue(OTHER, ttl_s=60)
    assert token not in (tmp_path / "tokens.db").read_bytes().decode(errors="replace")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls)
    admin = BrokerAdmin("127.0.0.1", broker, "enrol-admin", "admin-secret", topic_prefix=PREFIX)
    kept = tmp_path / "passwords"
    kept.mkdir()
    server = make_server(("127.0.0.1", 0), context, store, admin, kept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        out = tmp_path / "mqtt.password"
        first = enrol_cli(url, tls[0], token, out)
        assert first.returncode == 0, first.stderr
        assert "enrolled as s1-gw (school s1, district d1)" in first.stdout
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        password = out.read_text().strip()
        assert password not in first.stdout + first.stderr
        # Kept where broker-config reuses it: the next Ansible run keeps this account.
        assert (kept / "s1-gw.password").read_text().strip() == password
        assert stat.S_IMODE((kept / "s1-gw.password").stat().st_mode) == 0o600

        topics = Topics(PREFIX)
        # Accepted (nobody subscribes here, which MQTT v5 says in a success code).
        assert publish(broker, ME, password, topics.data(ME)) == "No matching subscribers"
        assert publish(broker, ME, password, topics.data(OTHER)) == "Not authorized"
        assert publish(broker, ME, "wrong", topics.data(ME)).startswith("connect: ")

        again = enrol_cli(url, tls[0], token, tmp_path / "again.password")
        assert again.returncode == 2
        assert again.stderr.strip() == "schoolmon enrol: enrolment refused: token already used"
        assert not (tmp_path / "again.password").exists()

        now[0] += 120
        late = enrol_cli(url, tls[0], short, tmp_path / "late.password")
        assert late.stderr.strip() == "schoolmon enrol: enrolment refused: token expired"
        unknown = enrol_cli(url, tls[0], "not-a-token", tmp_path / "x.password")
        assert unknown.stderr.strip() == "schoolmon enrol: enrolment refused: unknown token"
    finally:
        server.shutdown()
        server.server_close()


def test_enrolled_role_is_the_one_broker_config_makes() -> None:
    """One definition of an agent's rights: enrolment's ACLs equal broker-config's."""
    state = dynsec_config(Topics(PREFIX), "collectors", "collector", "x", [(ME, "pw")])
    roles = {r["rolename"]: r["acls"] for r in state["roles"]}  # type: ignore[attr-defined]
    assert agent_role_acls(Topics(PREFIX), ME) == roles[f"agent:{ME.agent}"]


def test_token_cli_never_takes_the_token_as_an_argument() -> None:
    """The agent command has no --token VALUE: a token on a command line shows in ps."""
    result = subprocess.run(schoolmon_cmd("agent", "enrol", "--help"),
                            capture_output=True, text=True, check=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert "--token-file" in result.stdout and "--token " not in result.stdout
