"""Enrolment: an agent fetches its own MQTT credential with a one-time token, over HTTPS.

District side: ``issue`` makes a token for one agent of the inventory (single use, expires),
stored only as its SHA-256; ``serve`` answers ``POST /v1/enrol`` over TLS: it redeems the
token, gives the agent a broker account (the dynamic-security plugin's control topic: the
agent's own role and client, exactly what ``schoolmon broker-config`` would make for it) and
returns the password once.  School side: ``agent`` posts the token, verifies the server with
the district CA and writes the password to a 0600 file.  So a gateway behind NAT or a Windows
classroom PC joins without the district reaching it over SSH.

Tokens are read from a file or the environment, never from the command line (it shows in
``ps`` and shell history while the token is still valid).

    python -m schoolmon.enrol issue --state DIR --agent ID --school ID --district ID [--ttl 7d]
    python -m schoolmon.enrol serve --state DIR --listen HOST:PORT --cert F --key F
                                    --broker-host H --broker-port P --admin-user U
                                    --admin-password-file F [--topic-prefix P]
                                    [--passwords-dir BROKER_CONFIG_OUT/passwords]
    python -m schoolmon.enrol agent --url https://... --ca F --token-file F|- --out FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sqlite3
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common.config import parse_duration
from common.wire import DEFAULT_PREFIX, ID_RE, AgentIdentity, Topics

CONTROL = "$CONTROL/dynamic-security/v1"
# Re-enrolling an agent (a reinstalled gateway) replaces its account: these are not failures.
_IGNORABLE = {("createRole", "Role already exists"), ("deleteClient", "Client not found")}


class EnrolError(Exception):
    """A refused enrolment: one line, safe to show to the agent."""


def _private_file(path: Path) -> None:
    # Created 0600 before anything secret is in it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class Grant:
    """What a redeemed token enrols."""

    who: AgentIdentity


class TokenStore:
    """One-time tokens in SQLite (mode 0600): only their SHA-256 is kept."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path, self.clock = path, clock
        if not path.exists():
            _private_file(path)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS token (hash TEXT PRIMARY KEY, district TEXT,"
                       " school TEXT, agent TEXT, expires REAL, used REAL)")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    def issue(self, who: AgentIdentity, ttl_s: float) -> str:
        """A new token for ``who``, valid ``ttl_s`` seconds and once."""
        for part in (who.district, who.school, who.agent):
            if not ID_RE.fullmatch(part):
                raise EnrolError(f"not an identifier: {part!r}")
        token = secrets.token_urlsafe(32)
        with self._db() as db:
            db.execute("INSERT INTO token VALUES (?, ?, ?, ?, ?, NULL)",
                       (_digest(token), who.district, who.school, who.agent,
                        self.clock() + ttl_s))
        return token

    def redeem(self, token: str) -> Grant:
        """The grant of a valid token, used up now; EnrolError if unknown, used or expired."""
        digest, now = _digest(token), self.clock()
        with self._db() as db:
            row = db.execute("SELECT district, school, agent, expires, used FROM token "
                             "WHERE hash = ?", (digest,)).fetchone()
            if row is None:
                raise EnrolError("unknown token")
            if row[4] is not None:
                raise EnrolError("token already used")
            if now > row[3]:
                raise EnrolError("token expired")
            # The conditional update is the single use: of two racing requests one wins.
            if db.execute("UPDATE token SET used = ? WHERE hash = ? AND used IS NULL",
                          (now, digest)).rowcount != 1:
                raise EnrolError("token already used")
        return Grant(AgentIdentity(row[0], row[1], row[2]))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def agent_role_acls(topics: Topics, who: AgentIdentity) -> list[dict[str, object]]:
    """The ACLs of an agent's own role (the same as collector/brokerconfig.py gives it)."""
    def acl(kind: str, topic: str) -> dict[str, object]:
        return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}

    return [acl("subscribeLiteral", topics.ack(who)), acl("publishClientReceive", topics.ack(who)),
            acl("publishClientSend", topics.data(who)),
            acl("publishClientSend", topics.status(who))]


class BrokerAdmin:
    """Accounts made at run time through the dynamic-security plugin's control topic."""

    def __init__(self, host: str, port: int, user: str, password: str, *,
                 topic_prefix: str = DEFAULT_PREFIX, timeout: float = 10.0) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.topics, self.timeout = Topics(topic_prefix), timeout

    def provision(self, who: AgentIdentity, password: str) -> None:
        """Give ``who`` its own role and a client with ``password`` (replacing an old one)."""
        role = f"agent:{who.agent}"
        self._run([
            {"command": "createRole", "rolename": role, "acls": agent_role_acls(self.topics, who)},
            {"command": "deleteClient", "username": who.agent},
            {"command": "createClient", "username": who.agent, "password": password,
             "clientid": who.agent, "roles": [{"rolename": role}]},
        ])

    def _run(self, commands: list[dict[str, Any]]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        answer: list[bytes] = []
        done, subscribed = threading.Event(), threading.Event()

        def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
            answer.append(bytes(msg.payload))
            done.set()

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"enrol-{uuid.uuid4().hex}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.username_pw_set(self.user, self.password)
        client.on_subscribe = lambda *_a: subscribed.set()
        client.on_message = on_message
        client.connect(self.host, self.port)
        client.loop_start()
        try:
            client.subscribe(f"{CONTROL}/response", qos=1)
            if not subscribed.wait(self.timeout):
                raise EnrolError("broker: no answer to the control subscription")
            client.publish(CONTROL, json.dumps({"commands": commands}), qos=1)
            if not done.wait(self.timeout):
                raise EnrolError("broker: no answer from the dynamic-security plugin")
        finally:
            client.disconnect()
            client.loop_stop()
        for response in json.loads(answer[0]).get("responses", []):
            error = response.get("error")
            if error and (response.get("command"), error) not in _IGNORABLE:
                raise EnrolError(f"broker refused {response.get('command')}: {error}")


def enrol(store: TokenStore, admin: BrokerAdmin, token: str,
          passwords_dir: Path | None = None) -> dict[str, str]:
    """Redeem ``token`` and make the agent's account; the answer sent to the agent.

    With ``passwords_dir`` (broker-config's ``--out``/passwords) the password is also kept
    where ``schoolmon broker-config`` reuses it, so the next Ansible run, which rewrites the
    broker's accounts from the inventory, keeps this agent's credential.
    """
    grant = store.redeem(token)
    password = secrets.token_urlsafe(24)
    if passwords_dir is not None:
        path = passwords_dir / f"{grant.who.agent}.password"
        _private_file(path)
        path.write_text(password + "\n", encoding="utf-8")
    admin.provision(grant.who, password)
    return {"district": grant.who.district, "school": grant.who.school,
            "agent": grant.who.agent, "username": grant.who.agent, "password": password}


def make_server(listen: tuple[str, int], context: ssl.SSLContext, store: TokenStore,
                admin: BrokerAdmin, passwords_dir: Path | None = None) -> ThreadingHTTPServer:
    """The HTTPS enrolment endpoint (serve_forever to run it)."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/v1/enrol":
                self._answer(404, {"error": "not found"})
                return
            try:
                length = min(int(self.headers.get("Content-Length", "0")), 4096)
                token = json.loads(self.rfile.read(length) or b"{}").get("token")
                if not isinstance(token, str) or not token:
                    raise EnrolError("no token")
                self._answer(200, enrol(store, admin, token, passwords_dir))
            except EnrolError as exc:
                self._answer(403, {"error": str(exc)})
            except (ValueError, AttributeError):
                self._answer(400, {"error": "not JSON with a token"})

        def _answer(self, status: int, body: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            # The default logs the request line only: no token or password ever reaches it.
            sys.stderr.write(f"enrol: {self.address_string()} {format % args}\n")

    server = ThreadingHTTPServer(listen, Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def fetch_credential(url: str, ca_file: str, token: str, timeout: float = 30.0
                     ) -> dict[str, str]:
    """The agent's side: post the token over verified TLS; the answer or EnrolError."""
    context = ssl.create_default_context(cafile=ca_file)
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/enrol", data=json.dumps({"token": token}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            answer: dict[str, str] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            reason = exc.reason
        raise EnrolError(f"enrolment refused: {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise EnrolError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    return answer


def _read_token(source: str) -> str:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return text.strip()


def main(argv: list[str] | None = None) -> int:
    """``python -m schoolmon.enrol issue|serve|agent``; errors are one line, exit 2."""
    parser = argparse.ArgumentParser(prog="schoolmon-enrol", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("issue", help="a one-time token for one agent (printed once)")
    p.add_argument("--state", type=Path, required=True, help="directory of tokens.db")
    p.add_argument("--agent", required=True)
    p.add_argument("--school", required=True)
    p.add_argument("--district", required=True)
    p.add_argument("--ttl", default="7d", help="how long the token is valid (default 7d)")
    p = sub.add_parser("serve", help="the HTTPS enrolment endpoint")
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--broker-host", default="127.0.0.1")
    p.add_argument("--broker-port", type=int, default=1883)
    p.add_argument("--admin-user", required=True)
    p.add_argument("--admin-password-file", required=True)
    p.add_argument("--topic-prefix", default=DEFAULT_PREFIX)
    p.add_argument("--passwords-dir", type=Path,
                   help="broker-config's passwords/ directory, to keep the credential there")
    p = sub.add_parser("agent", help="enrol this agent: fetch its MQTT password")
    p.add_argument("--url", required=True)
    p.add_argument("--ca", required=True, help="the district CA (verifies the server)")
    p.add_argument("--token-file", required=True, help="file holding the token, or - (stdin)")
    p.add_argument("--out", type=Path, required=True, help="where to write the password (0600)")
    args = parser.parse_args(argv)
    try:
        if args.command == "issue":
            args.state.mkdir(parents=True, exist_ok=True, mode=0o700)
            who = AgentIdentity(args.district, args.school, args.agent)
            print(TokenStore(args.state / "tokens.db").issue(who, parse_duration(args.ttl)))
        elif args.command == "serve":
            host, _, port = args.listen.rpartition(":")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(args.cert, args.key)
            password = Path(args.admin_password_file).read_text(encoding="utf-8").strip()
            admin = BrokerAdmin(args.broker_host, args.broker_port, args.admin_user, password,
                                topic_prefix=args.topic_prefix)
            make_server((host, int(port)), context, TokenStore(args.state / "tokens.db"),
                        admin, args.passwords_dir).serve_forever()
        else:
            answer = fetch_credential(args.url, args.ca, _read_token(args.token_file))
            _private_file(args.out)
            args.out.write_text(answer["password"] + "\n", encoding="utf-8")
            print(f"enrolled as {answer['agent']} (school {answer['school']}, district "
                  f"{answer['district']}); password in {args.out}")
    except (EnrolError, OSError, ValueError) as exc:
        print(f"schoolmon enrol: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
