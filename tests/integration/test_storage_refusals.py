"""Storage refusals against a real InfluxDB 1.6 (and the alert they raise): nothing lost.

Each test counts exactly: every sample an agent produced is stored once, or is a counted
dead-letter point.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from collector.alerts.engine import AlertEngine
from collector.alerts.settings import AlertRulesSettings
from collector.config import CollectorConfig, Influx1Storage
from collector.inventory import Inventory
from collector.storage import StorageError
from collector.storage.influx1 import Influx1Writer
from collector.subscriber import Collector, build_writer
from tests.conftest import (
    Services,
    influx_query,
    start_collector_process,
    start_services,
    wait_until,
)
from tests.integration.alert_scenario import PASSWORD, alert_settings
from tests.integration.storage_scenario import (
    WHO,
    CountingProbe,
    collector_yaml,
    drain_and_count,
    logs,
    query,
    start_agent,
    stop_process,
    stored_times,
)
from tests.peers.smtp_server import start_smtp

pytestmark = pytest.mark.integration


def test_missing_database_then_created_loses_nothing(services: Services, topic_prefix: str,
                                                     tmp_path: Path) -> None:
    """404 database not found: nothing acked, one log line with the fix; created: all stored."""
    db = "sr_missing_" + topic_prefix[1:9]
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix,
                         {"kind": "influxdb1", "url": services.influx_url, "database": db})
    collector = start_collector_process(cfg)
    probe = CountingProbe()
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: "does not exist" in logs(cfg) and len(probe.produced) >= 20, 30,
                   "the refusal logged while samples pile up")
        line = ("storage is not storing writes, nothing is acked meanwhile: InfluxDB says "
                f"database '{db}' does not exist: create it (CREATE DATABASE \"{db}\") or fix "
                "storage.database in collector.yaml")
        assert logs(cfg).count(line) == 1, logs(cfg)  # once, though retried every second
        assert "Traceback" not in logs(cfg)
        assert agent.spool.stats().depth > 0 and agent.publisher.acked_batches == 0
        influx_query(services.influx_url, "", f'CREATE DATABASE "{db}"')
        stored = drain_and_count(agent, probe, lambda: stored_times(services.influx_url, db))
        assert stored == sorted(probe.produced)  # every sample, each once
        print(f"missing database: produced {len(probe.produced)}, stored {len(stored)}")
        assert "storage is back after" in logs(cfg)
        outage = query(services.influx_url, db, "SELECT storage_failing, "
                       "storage_failure_cause FROM schoolmon_collector")
        assert [(r["storage_failing"], r["storage_failure_cause"]) for r in outage][:2] == [
            (1.0, "database_missing"), (0.0, "database_missing")]
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)
        influx_query(services.influx_url, "", f'DROP DATABASE "{db}"')


@pytest.fixture(scope="module")
def auth_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """An InfluxDB of these tests with authentication on (admin ``adm``)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("INFLUXDB_AUTH", "adm:right-pw")
        svc = start_services(tmp_path_factory.mktemp("auth-influx"), "influxdb")
    yield svc
    svc.stop()


def refusal(url: str, *, db: str = "schoolmon", rp: str = "autogen", user: str = "adm",
            password: str = "right-pw", line: str = "reach rtt_ms=1.5 1") -> StorageError:
    """What the real writer raises for one write to the authenticated InfluxDB."""
    pw = f"SCHOOLMON_T_{user.upper()}"
    settings = Influx1Storage.model_validate(
        {"kind": "influxdb1", "url": url, "database": db, "retention_policy": rp,
         "username": user, "password_env": pw}, context={"environ": {pw: password}})
    writer = Influx1Writer(settings)
    try:
        writer.write([line])
    except StorageError as exc:
        return exc
    finally:
        writer.close()
    raise AssertionError("the write was accepted")


def test_real_refusals_are_classified_from_their_bodies(auth_influx: Services) -> None:
    """InfluxDB 1.6's own answers, through the real writer: cause, action and the fix."""
    url = auth_influx.influx_url
    query(url, "", "CREATE USER ro WITH PASSWORD 'ro-pw'", "adm:right-pw")
    query(url, "", "CREATE DATABASE typed", "adm:right-pw")
    seed = Influx1Writer(Influx1Storage.model_validate(
        {"kind": "influxdb1", "url": url, "database": "typed", "username": "adm",
         "password_env": "PW"}, context={"environ": {"PW": "right-pw"}}))
    seed.write(["reach rtt_ms=1i 1"])  # rtt_ms is an integer in this shard from now on
    seed.close()
    cases = {
        "database_missing": refusal(url, db="nope"),
        "auth": refusal(url, password="wrong"),
        "forbidden": refusal(url, user="ro", password="ro-pw"),
        "retention_policy_missing": refusal(url, rp="nope"),
        "field_type_conflict": refusal(url, db="typed", line="reach rtt_ms=1.5 1"),
    }
    for cause, exc in cases.items():
        assert exc.cause == cause, (cause, str(exc))
        assert "\n" not in str(exc)
    assert [c for c, e in cases.items() if e.action == "quarantine"] == ["field_type_conflict"]
    assert (cases["database_missing"].status, cases["forbidden"].status,
            cases["retention_policy_missing"].status) == (404, 403, 500)
    assert "user 'ro' may not write to 'schoolmon' (403)" in str(cases["forbidden"])
    assert "right-pw" not in str(cases["auth"]) and "wrong" not in str(cases["auth"])


def test_wrong_password_then_fixed_loses_nothing(auth_influx: Services, services: Services,
                                                 topic_prefix: str, tmp_path: Path) -> None:
    """401: nothing acked, one line naming the settings; restarted with the right one: all."""
    pw = tmp_path / "influx.pw"
    pw.write_text("wrong-pw\n")
    pw.chmod(0o600)
    storage = {"kind": "influxdb1", "url": auth_influx.influx_url, "database": "schoolmon",
               "username": "adm", "password_file": str(pw)}
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix, storage)
    collector = start_collector_process(cfg)
    probe = CountingProbe()
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: "(401)" in logs(cfg) and len(probe.produced) >= 15, 30,
                   "the refusal logged")
        assert logs(cfg).count("InfluxDB refused the credentials (401): check storage.username"
                               " / password_file (or password_env) in collector.yaml") == 1
        assert "right-pw" not in logs(cfg) and "wrong-pw" not in logs(cfg)
        assert agent.publisher.acked_batches == 0
        collector.kill()  # nothing was acked: a crash and a clean stop leave the same state
        collector.wait(10)
        pw.write_text("right-pw\n")
        collector = start_collector_process(cfg)
        stored = drain_and_count(agent, probe, lambda: stored_times(
            auth_influx.influx_url, "schoolmon", "adm:right-pw"))
        assert stored == sorted(probe.produced)
        print(f"wrong password: produced {len(probe.produced)}, stored {len(stored)}")
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)


def test_field_type_conflict_dead_letters_only_that_point(services: Services, influx_db: str,
                                                          topic_prefix: str,
                                                          tmp_path: Path) -> None:
    """A point conflicting with its shard becomes a schoolmon_reject with its line; rest stored."""
    # A day ago, where reach rtt_ms is already an integer (the collector stores numbers as
    # floats): that one point conflicts, the agent's host points around it do not.
    odd = int(time.time() * 1000) - 86_400_000
    req = urllib.request.Request(
        f"{services.influx_url}/write?db={influx_db}&precision=ms",
        data=f"reach rtt_ms=1i {odd - 1}".encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix,
                         {"kind": "influxdb1", "url": services.influx_url,
                          "database": influx_db})
    collector = start_collector_process(cfg)
    probe = CountingProbe(odd_ts=odd)
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: probe.collects >= 5, 30, "five collects")
        probe.paused.set()
        wait_until(lambda: agent.spool.stats().depth == 0, 30, "the spool to drain")
        stored = stored_times(services.influx_url, influx_db)
        dead = query(services.influx_url, influx_db,
                     "SELECT line, detail, agent, collector, \"cause\" FROM schoolmon_reject")
        assert len(probe.produced) == len(stored) + len(dead)  # produced = stored + drops
        assert sorted([*stored, odd]) == sorted(probe.produced) and odd not in stored
        (reject,) = dead
        assert reject["cause"] == "storage_field_type_conflict" and reject["agent"] == WHO.agent
        assert reject["collector"] == "sr-collector"  # its client id, as on every reject
        line = reject["line"]
        assert line.startswith("reach,agent=sr-gw,") and ",target=odd " in line
        assert "rtt_ms=1.0" in line
        assert reject["line"].endswith(f" {odd}") and "field type conflict" in reject["detail"]
        assert logs(cfg).count("refused 1 point(s) for good (field_type_conflict)") == 1
        print(f"conflict: produced {len(probe.produced)}, stored {len(stored)}, "
              f"dead-letter {len(dead)}")
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)


def mail_text(message: EmailMessage) -> str:
    """The plain-text part of a mail."""
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_storage_refusing_alert_is_mailed_while_influxdb_refuses(
        services: Services, topic_prefix: str, tmp_path: Path) -> None:
    """The storage_refusing mail goes out by SMTP while InfluxDB refuses; resolved after."""
    db = "sr_alert_" + topic_prefix[1:9]
    (tmp_path / "smtp").mkdir()
    smtp = start_smtp(tmp_path / "smtp", PASSWORD)
    rules = AlertRulesSettings(storage_refusing_after=1.0)
    settings = alert_settings(tmp_path / "alerts.db", smtp, language="en", group_wait="1s",
                              group_interval="1s")
    engine = AlertEngine(settings, Inventory(districts=[]), rules)
    config = CollectorConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": services.mqtt_port, "topic_prefix": topic_prefix,
                 "username": None, "client_id": "sr-alert-collector", "session_expiry": "60s"},
        "storage": {"kind": "influxdb1", "url": services.influx_url, "database": db},
        "write": {"flush_interval": "100ms", "max_retry_delay": "1s"},
    })
    collector = Collector(config, build_writer(config), observers=[engine.observe])
    engine.tracker.watch_storage(collector.storage.health)  # the wiring `collector run` needs
    ticking = threading.Event()
    ticker = threading.Thread(target=engine.run, args=(ticking, 0.2), daemon=True)
    collector.start()
    assert collector.connected.wait(10)
    ticker.start()
    probe = CountingProbe()
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: len(smtp.messages) >= 1, 30, "the storage alert mail")
        assert collector.storage.stats.failing and agent.publisher.acked_batches == 0
        firing = smtp.messages[0].message
        assert str(firing["subject"]).strip() == (  # a long subject is folded
            "[schoolmon FIRING] collector (collector): Collector storage refusing writes")
        text = mail_text(firing)
        assert "cause: database does not exist" in text
        assert f'create it (CREATE DATABASE "{db}")' in text
        influx_query(services.influx_url, "", f'CREATE DATABASE "{db}"')
        wait_until(lambda: len(smtp.messages) >= 2, 30, "the resolved mail")
        resolved = str(smtp.messages[1].message["subject"]).strip()
        assert resolved.startswith("[schoolmon RESOLVED] collector (collector)")
        stored = drain_and_count(agent, probe, lambda: stored_times(services.influx_url, db))
        assert stored == sorted(probe.produced)
        assert len(smtp.messages) == 2
        print(f"alert: produced {len(probe.produced)}, stored {len(stored)}, mails 2")
    finally:
        stop.set()
        thread.join(10)
        ticking.set()
        ticker.join(10)
        collector.stop()
        engine.close()
        smtp.stop()
        influx_query(services.influx_url, "", f'DROP DATABASE "{db}"')
