"""PJLink client and probe against a protocol-faithful projector on real loopback sockets."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.probes.pjlink import PjlinkProbe, PjlinkSettings
from agent.probes.pjlink_protocol import (
    PjlinkAuthError,
    PjlinkConnectionError,
    PjlinkError,
    PjlinkProtocolError,
    PjlinkTimeoutError,
    ProjectorStatus,
    query_projector,
)
from common.wire import check_samples
from tests.net import free_port
from tests.peers.pjlink_server import Faults, PjlinkServer, ProjectorState, pjlink_server

pytestmark = pytest.mark.integration

OK_ERRORS = {"err_fan": 0, "err_lamp": 0, "err_temp": 0, "err_cover": 0, "err_filter": 0,
             "err_other": 0}
ON = {"online": True, "power": "on", "lamp_hours": 1500, **OK_ERRORS}
OFFLINE = {"online": False}
TAGS = {"device": "proj-301", "classroom": "301", "device_type": "projector"}




def probe_for(*ports: int, password_env: str | None = None, timeout: float = 2.0,
              environ: dict[str, str] | None = None, **extra: object) -> PjlinkProbe:
    """A probe built from settings, one device per port (proj-301, proj-302, ...)."""
    devices = [{"name": f"proj-{301 + i}", "classroom": str(301 + i), "host": "127.0.0.1",
                "port": port, **({"password_env": password_env} if password_env else {})}
               for i, port in enumerate(ports)]
    settings = PjlinkSettings.model_validate(
        {"type": "pjlink", "devices": devices, "device_timeout": timeout, **extra},
        context={"environ": environ or {}})
    return settings.build()


SCENARIOS = [
    pytest.param(ProjectorState(), Faults(), ON, id="class1-on"),
    pytest.param(ProjectorState(power="0", errors="021000", lamps=[(2999, False)]), Faults(),
                 {**ON, "power": "off", "lamp_hours": 2999, "err_lamp": 2, "err_temp": 1},
                 id="standby-lamp-error-temp-warning"),
    pytest.param(ProjectorState(power="2"), Faults(), {**ON, "power": "cooling"}, id="cooling"),
    pytest.param(ProjectorState(power="3"), Faults(), {**ON, "power": "warming"}, id="warming"),
    pytest.param(ProjectorState(errors="111112"), Faults(),
                 {**ON, "err_fan": 1, "err_lamp": 1, "err_temp": 1, "err_cover": 1,
                  "err_filter": 1, "err_other": 2}, id="all-warnings-other-error"),
    pytest.param(ProjectorState(pjlink_class=2, lamps=[(1500, True), (2300, False)],
                                filter_hours=410), Faults(),
                 {**ON, "lamp_hours": 2300, "filter_hours": 410}, id="class2-two-lamps-filter"),
    pytest.param(ProjectorState(lamps=[]), Faults(),
                 {k: v for k, v in ON.items() if k != "lamp_hours"}, id="laser-no-lamp-err1"),
    pytest.param(ProjectorState(), Faults(errors={"POWR": "ERR3"}), {**ON, "power": "unknown"},
                 id="powr-err3-unavailable-time"),
    pytest.param(ProjectorState(), Faults(errors={"ERST": "ERR4"}),
                 {"online": True, "power": "on", "lamp_hours": 1500}, id="erst-err4-failure"),
    pytest.param(ProjectorState(), Faults(errors={"INPT": "ERR2", "NAME": "ERR1"}), ON,
                 id="err2-err1-on-info-commands"),
    pytest.param(ProjectorState(), Faults(lkup_before={"POWR", "ERST", "LAMP"}), ON,
                 id="unsolicited-lkup-skipped"),
    pytest.param(ProjectorState(), Faults(nul_padding=True), ON, id="nul-padding"),
    pytest.param(ProjectorState(pjlink_class=2), Faults(errors={"FILT": "ERR1"}), ON,
                 id="class2-no-filter"),
    pytest.param(ProjectorState(), Faults(garbage={"INPT": b"\xff\xfeHELLO\r"}), OFFLINE,
                 id="garbage-answer"),
    pytest.param(ProjectorState(), Faults(garbage={"POWR": b"%1INPT=31\r"}), OFFLINE,
                 id="answer-to-wrong-command"),
    pytest.param(ProjectorState(), Faults(garbage={"LAMP": b"%1LAMP=12x 1\r"}), OFFLINE,
                 id="malformed-lamp"),
    pytest.param(ProjectorState(), Faults(close_mid_answer="ERST"), OFFLINE,
                 id="closes-mid-answer"),
    pytest.param(ProjectorState(), Faults(greeting=b"SSH-2.0-OpenSSH_9.2\r\n"), OFFLINE,
                 id="not-pjlink-greeting"),
    pytest.param(ProjectorState(), Faults(silent=True), OFFLINE, id="silent"),
    pytest.param(ProjectorState(), Faults(silent_on="INF1"), OFFLINE, id="silent-mid-session"),
]


@pytest.mark.parametrize("password", [None, "s3cret-pw"])
@pytest.mark.parametrize(("state", "faults", "expected"), SCENARIOS)
def test_scenarios_give_expected_sample(state: ProjectorState, faults: Faults,
                                        expected: dict[str, object],
                                        password: str | None) -> None:
    """Every scenario, with and without authentication, gives exactly the expected sample."""
    with pjlink_server(state, password=password, faults=faults) as server:
        probe = probe_for(server.port, password_env="PW" if password else None, timeout=0.8,
                          environ={"PW": password} if password else None)
        samples = probe.collect()
    check_samples(samples)
    assert [(s.kind, s.tags, s.fields) for s in samples] == [("av", TAGS, expected)]
    assert server.auth_failures == 0


def test_full_class2_status() -> None:
    """query_projector returns every value the projector holds, class 2 included."""
    state = ProjectorState(power="1", errors="000010", lamps=[(1200, True), (30, False)],
                           input="3A", av_mute="31", name="教室301投影", pjlink_class=2,
                           serial="SN-42", software_version="V2.10", filter_hours=77)
    with pjlink_server(state, password="pw") as server:
        status = query_projector("127.0.0.1", server.port, "pw", 2.0)
    assert status == ProjectorStatus(
        power="on",
        errors={"fan": 0, "lamp": 0, "temp": 0, "cover": 0, "filter": 1, "other": 0},
        lamp_hours=[1200, 30], lamp_on=[True, False], input="3A", av_mute="video+audio",
        name="教室301投影", manufacturer="EPSON", model="EB-2250U", pjlink_class=2,
        serial="SN-42", software_version="V2.10", filter_hours=77, unavailable={})
    assert [c[:6] for c in server.commands] == [
        "%1POWR", "%1ERST", "%1LAMP", "%1INPT", "%1AVMT", "%1NAME", "%1INF1", "%1INF2",
        "%1CLSS", "%2SNUM", "%2SVER", "%2FILT"]


def test_class1_does_not_send_class2_commands_and_records_errors() -> None:
    """A class 1 projector gets no %2 command; ERRn answers are kept in ``unavailable``."""
    with pjlink_server(faults=Faults(errors={"LAMP": "ERR1", "AVMT": "ERR3"})) as server:
        status = query_projector("127.0.0.1", server.port, None, 2.0)
    assert status.pjlink_class == 1 and status.serial is None and status.filter_hours is None
    assert status.unavailable == {"LAMP": "ERR1", "AVMT": "ERR3"}
    assert status.lamp_hours == [] and status.av_mute is None
    assert not any(c.startswith("%2") for c in server.commands)


@pytest.mark.parametrize(("mute", "expected"), [("30", "off"), ("10", "off"), ("11", "video"),
                                                ("21", "audio"), ("31", "video+audio")])
def test_av_mute_codes(mute: str, expected: str) -> None:
    """AVMT codes of class 1 and 2."""
    with pjlink_server(ProjectorState(av_mute=mute)) as server:
        assert query_projector("127.0.0.1", server.port, None, 2.0).av_mute == expected


@pytest.mark.parametrize(
    ("password", "faults", "error", "match"),
    [
        pytest.param("wrong", Faults(), PjlinkAuthError, "wrong password", id="wrong-password"),
        pytest.param(None, Faults(), PjlinkAuthError, "none configured", id="no-password"),
        pytest.param("pw", Faults(errors={"ERST": "ERRA"}), PjlinkAuthError, "ERRA",
                     id="erra-later"),
        pytest.param("pw", Faults(silent=True), PjlinkTimeoutError, "timeout", id="silent"),
        pytest.param("pw", Faults(close_mid_answer="POWR"), PjlinkConnectionError, "closed",
                     id="closed"),
        pytest.param("pw", Faults(garbage={"CLSS": b"%1CLSS=x\r"}), PjlinkProtocolError,
                     "CLSS", id="bad-class"),
        pytest.param("pw", Faults(garbage={"ERST": b"%1ERST=0000\r"}), PjlinkProtocolError,
                     "ERST", id="short-erst"),
        pytest.param("pw", Faults(lkup_before=set(), garbage={"POWR": b"x" * 3000}),
                     PjlinkProtocolError, "longer", id="endless-line"),
    ],
)
def test_errors_are_typed(password: str | None, faults: Faults, error: type[PjlinkError],
                          match: str) -> None:
    """Each failure is its documented PjlinkError subclass."""
    with pjlink_server(password="pw", faults=faults) as server, \
            pytest.raises(error, match=match):
        query_projector("127.0.0.1", server.port, password, 0.5)


def test_wrong_password_digest_is_checked_by_the_projector() -> None:
    """A wrong password reaches the projector as a wrong digest; nothing else is sent."""
    with pjlink_server(password="right") as server:
        with pytest.raises(PjlinkAuthError):
            query_projector("127.0.0.1", server.port, "wrong", 2.0)
        assert server.auth_failures == 1 and server.commands == []
        status = query_projector("127.0.0.1", server.port, "right", 2.0)
    assert status.power == "on" and server.auth_failures == 1


def test_no_password_configured_sends_nothing() -> None:
    """Without a password the client gives up after the greeting, no guessing."""
    with pjlink_server(password="pw") as server, pytest.raises(PjlinkAuthError):
        query_projector("127.0.0.1", server.port, None, 2.0)
    assert server.connections == 1 and server.commands == [] and server.auth_failures == 0


def test_connection_refused_is_connection_error() -> None:
    """Nobody listening: PjlinkConnectionError at once."""
    started = time.monotonic()
    with pytest.raises(PjlinkConnectionError):
        query_projector("127.0.0.1", free_port(), None, 5.0)
    assert time.monotonic() - started < 2.0


def test_wrong_password_backs_off_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    """With ERRA the device is contacted once per back-off window, and logged once."""
    caplog.set_level(logging.INFO, logger="agent.probes.pjlink")
    with pjlink_server(password="right") as bad, pjlink_server() as good:
        probe = probe_for(bad.port, good.port, password_env="PW", environ={"PW": "Xq9-not-it"},
                          auth_backoff_polls=3)
        per_poll = [probe.collect() for _ in range(10)]
    assert bad.connections == 3  # polls 1, 5 and 9; skipped 3 polls after each ERRA
    assert good.connections == 10  # the other projector is polled every time
    assert [len(p) for p in per_poll] == [2, 1, 1, 1, 2, 1, 1, 1, 2, 1]
    assert per_poll[0][0].fields == {"online": True}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "proj-301" in errors[0].getMessage()
    assert "Xq9-not-it" not in caplog.text  # the password never reaches a log


def test_silent_projector_returns_within_timeout() -> None:
    """A projector that accepts and never speaks costs at most the device timeout."""
    with pjlink_server(faults=Faults(silent=True)) as server:
        probe = probe_for(server.port, timeout=0.5)
        started = time.monotonic()
        (sample,) = probe.collect()
        elapsed = time.monotonic() - started
    assert sample.fields == OFFLINE
    assert 0.45 <= elapsed < 1.5, elapsed  # slack for a loaded 2-core CI machine


def test_timeout_bounds_whole_session_not_each_read() -> None:
    """A projector answering every command after 0.15 s never trips a per-read timeout of
    0.5 s, but the session deadline cuts it: the whole query costs at most the timeout."""
    with pjlink_server(faults=Faults(delay_s=0.15)) as server:
        started = time.monotonic()
        with pytest.raises(PjlinkTimeoutError):
            query_projector("127.0.0.1", server.port, None, 0.5)
        elapsed = time.monotonic() - started
        assert 0.45 <= elapsed < 1.2, elapsed
        assert 2 <= len(server.commands) <= 4  # of the 9 the query needs


def test_silent_mid_session_is_timeout() -> None:
    """Answers, then silence before CLSS: a timeout after the commands already answered."""
    with pjlink_server(faults=Faults(silent_on="CLSS")) as server:
        with pytest.raises(PjlinkTimeoutError):
            query_projector("127.0.0.1", server.port, None, 0.5)
        assert len(server.commands) == 9 and server.commands[-1].startswith("%1CLSS")


def test_dead_projectors_do_not_delay_others() -> None:
    """Four silent projectors and one healthy: one timeout in all, not four."""
    with ExitStack() as stack:
        dead = [stack.enter_context(pjlink_server(faults=Faults(silent=True)))
                for _ in range(4)]
        good = stack.enter_context(pjlink_server())
        probe = probe_for(*(s.port for s in dead), good.port, timeout=1.0)
        started = time.monotonic()
        samples = probe.collect()
        elapsed = time.monotonic() - started
    assert [s.fields["online"] for s in samples] == [False, False, False, False, True]
    assert samples[4].fields == ON
    assert elapsed < 2.5, elapsed  # serial polling would take 4 s


def test_offline_logged_on_change_only(caplog: pytest.LogCaptureFixture) -> None:
    """A dead projector is logged when it goes down and when it is back, not every poll."""
    caplog.set_level(logging.INFO, logger="agent.probes.pjlink")
    server = PjlinkServer()
    port = server.port
    server.close()
    probe = probe_for(port, timeout=0.5)
    for _ in range(3):
        assert probe.collect()[0].fields == OFFLINE
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "proj-301" in warnings[0].getMessage()


def test_settings_secret_and_validation() -> None:
    """Passwords come from the environment, stay out of repr; bad settings are errors."""
    base = {"type": "pjlink", "devices": [
        {"name": "proj-301", "classroom": "301", "host": "192.0.2.10",
         "password_env": "PJLINK_PW"}]}
    settings = PjlinkSettings.model_validate(base, context={"environ": {"PJLINK_PW": "hunter2"}})
    assert settings.devices[0].secret("password") == "hunter2"
    assert settings.devices[0].port == 4352 and settings.interval == 60.0
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    with pytest.raises(ValueError, match="PJLINK_PW is not set"):
        PjlinkSettings.model_validate(base, context={"environ": {}})
    twice = {**base, "devices": base["devices"] * 2}  # type: ignore[operator]
    with pytest.raises(ValueError, match="duplicate device name"):
        PjlinkSettings.model_validate(twice, context={"environ": {"PJLINK_PW": "x"}})
    with pytest.raises(ValueError, match="classroom"):
        PjlinkSettings.model_validate({"type": "pjlink", "devices": [
            {"name": "p", "classroom": "bad\\room", "host": "h"}]})
    with pytest.raises(ValueError, match="devices"):
        PjlinkSettings.model_validate({"type": "pjlink", "devices": []})


def test_injected_query_no_network() -> None:
    """The probe's transport is injectable; the status maps to fields as documented."""
    status = ProjectorStatus(power="on", errors={}, lamp_hours=[], lamp_on=[], input=None,
                             av_mute=None, name=None, manufacturer=None, model=None,
                             pjlink_class=1)
    calls: list[tuple[str, int, str | None, float]] = []

    def query(host: str, port: int, password: str | None, timeout: float) -> ProjectorStatus:
        calls.append((host, port, password, timeout))
        return replace(status, lamp_hours=[10, 7000, 3])

    settings = PjlinkSettings.model_validate({"type": "pjlink", "device_timeout": "3s", "devices": [
        {"name": "proj-301", "classroom": "301", "host": "192.0.2.10", "port": 14352}]})
    (sample,) = PjlinkProbe(settings, query=query, now_ms=lambda: 1_763_890_000_000).collect()
    assert calls == [("192.0.2.10", 14352, None, 3.0)]
    assert sample.ts_ms == 1_763_890_000_000
    assert sample.fields == {"online": True, "power": "on", "lamp_hours": 7000}


@settings(max_examples=40, deadline=None)
@given(greeting=st.one_of(st.none(), st.binary(max_size=80).map(lambda b: b + b"\r")),
       command=st.sampled_from(["POWR", "ERST", "LAMP", "INPT", "AVMT", "NAME", "CLSS", "SNUM"]),
       answer=st.binary(max_size=200).map(lambda b: b + b"\r"))
def test_random_bytes_from_projector_raise_only_pjlink_errors(
        greeting: bytes | None, command: str, answer: bytes) -> None:
    """Whatever a projector sends, the client returns a status or raises a PjlinkError.

    Lines end in CR so most examples are answered at once; lines that never end are the
    'silent' and 'endless-line' cases above."""
    faults = Faults(greeting=greeting, garbage={command: answer})
    with pjlink_server(ProjectorState(pjlink_class=2), password="pw", faults=faults) as server:
        try:
            status = query_projector("127.0.0.1", server.port, "pw", 0.2)
        except PjlinkError:
            return
    assert status.power in ("off", "on", "cooling", "warming", "unknown")
