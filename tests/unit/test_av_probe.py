"""av: settings, and the probe with injected checkers (the real checkers are integration-tested)."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from pydantic import ValidationError

from agent.probes.av import AvDevice, AvProbe, AvSettings
from agent.probes.av_checks import DEFAULT_CHECKERS, CheckError, Fields
from agent.probes.icmp import IcmpPermissionError, permission_message
from common.wire import Sample, check_samples

TS = 1_763_890_000_000
ENV = {"PJ": "projector-secret", "C": "community-secret"}

EXAMPLE = {
    "type": "av", "interval": "60s",
    "devices": [
        {"name": "panel-301", "classroom": "301", "device_type": "panel",
         "host": "192.168.3.11", "method": "icmp"},
        {"name": "pc-301", "classroom": "301", "device_type": "pc", "host": "192.168.3.12",
         "method": "tcp", "port": 3389},
        {"name": "proj-302", "classroom": "302", "device_type": "projector",
         "host": "192.168.3.20", "method": "pjlink", "password_env": "PJ"},
        {"name": "spk-1", "classroom": "302", "device_type": "speaker", "host": "192.168.3.30",
         "method": "snmp", "community_env": "C"},
    ],
}


def settings(**extra: object) -> AvSettings:
    """The design example with overrides, secrets from ENV."""
    return AvSettings.model_validate({**EXAMPLE, **extra}, context={"environ": ENV})


def fixed(fields: Fields) -> object:
    """A checker that always returns ``fields``."""
    return lambda device, timeout: dict(fields)


def raising(exc: BaseException) -> object:
    """A checker that always raises ``exc``."""
    def check(device: AvDevice, timeout: float) -> Fields:
        raise exc
    return check


PJLINK_FIELDS: Fields = {"online": True, "power": "on", "lamp_hours": 1234, "err_fan": 0,
                         "err_lamp": 1, "err_temp": 0, "err_cover": 0, "err_filter": 2,
                         "err_other": 0}


def probe(checkers: dict[str, object], **extra: object) -> AvProbe:
    """An AvProbe over the example with the given checkers."""
    return AvProbe(settings(**extra), checkers=checkers,  # type: ignore[arg-type]
                   now_ms=lambda: TS, grace=0.2)


def by_device(samples: list[Sample]) -> dict[str, Sample]:
    """Samples keyed by device tag, checked against the wire contract."""
    check_samples(samples)
    return {s.tags["device"]: s for s in samples}


def test_every_method_through_its_checker_tags_and_fields() -> None:
    """One sample per device, tagged device/classroom/device_type; the checker's fields."""
    seen: list[tuple[str, float, str | None, str | None]] = []

    def pjlink(device: AvDevice, timeout: float) -> Fields:
        seen.append((device.name, timeout, device.secret("password"), device.secret("community")))
        return dict(PJLINK_FIELDS)

    def snmp(device: AvDevice, timeout: float) -> Fields:
        seen.append((device.name, timeout, device.secret("password"), device.secret("community")))
        return {"online": True, "uptime_s": 360}

    samples = by_device(probe({"icmp": fixed({"online": True, "rtt_ms": 0.5}),
                               "tcp": fixed({"online": False}), "pjlink": pjlink,
                               "snmp": snmp}).collect())
    assert sorted(seen) == [("proj-302", 3.0, "projector-secret", None),
                            ("spk-1", 3.0, None, "community-secret")]
    assert samples["panel-301"] == Sample("av", TS, {"device": "panel-301", "classroom": "301",
                                                     "device_type": "panel"},
                                          {"online": True, "rtt_ms": 0.5})
    assert samples["pc-301"].fields == {"online": False}
    assert samples["proj-302"].fields == PJLINK_FIELDS
    assert samples["proj-302"].tags["device_type"] == "projector"
    assert samples["spk-1"].fields == {"online": True, "uptime_s": 360}


@pytest.mark.parametrize(
    "exc",
    [CheckError("192.168.3.20:4352: connect timed out"), ConnectionRefusedError(111, "refused"),
     TimeoutError(), RuntimeError("pysnmp surprise"), ValueError("bad")],
)
def test_any_failure_is_offline_not_an_exception(exc: Exception) -> None:
    """Whatever a checker raises for one device, that device is offline and others report."""
    samples = by_device(probe({"icmp": raising(exc), "tcp": fixed({"online": True}),
                               "pjlink": fixed(PJLINK_FIELDS),
                               "snmp": fixed({"online": True})}).collect())
    assert samples["panel-301"].fields == {"online": False}
    assert samples["pc-301"].fields == {"online": True}
    assert len(samples) == 4


def test_wrong_pjlink_password_is_online_without_status(
        caplog: pytest.LogCaptureFixture) -> None:
    """A projector refusing our password greeted us: online, error logged by name."""
    checkers = {"pjlink": raising(CheckError("wrong password (PJLINK ERRA)", online=True)),
                "icmp": fixed({"online": True}), "tcp": fixed({"online": True}),
                "snmp": fixed({"online": True})}
    with caplog.at_level(logging.ERROR, logger="agent.probes.av"):
        samples = by_device(probe(checkers).collect())
    assert samples["proj-302"].fields == {"online": True}
    assert [r.getMessage() for r in caplog.records] == [
        "av proj-302 (192.168.3.20, pjlink): online, but wrong password (PJLINK ERRA)"]


def test_devices_are_checked_concurrently() -> None:
    """Each checker waits until all four have started: only parallel checks get through."""
    all_started = threading.Barrier(4, timeout=5)

    def check(device: AvDevice, timeout: float) -> Fields:
        all_started.wait()
        return {"online": True}

    samples = probe(dict.fromkeys(DEFAULT_CHECKERS, check)).collect()
    assert [s.fields["online"] for s in samples] == [True] * 4


def test_hung_checker_is_abandoned_after_timeout_plus_grace() -> None:
    """A checker that ignores its timeout costs device_timeout + grace, then it is offline."""
    release = threading.Event()

    def hang(device: AvDevice, timeout: float) -> Fields:
        release.wait(30)
        return {"online": True}

    p = probe({"pjlink": hang, "icmp": fixed({"online": True}), "tcp": fixed({"online": True}),
               "snmp": fixed({"online": True})}, device_timeout="300ms")
    started = time.monotonic()
    try:
        samples = by_device(p.collect())
    finally:
        release.set()
    elapsed = time.monotonic() - started
    assert samples["proj-302"].fields == {"online": False}
    assert samples["panel-301"].fields == {"online": True}
    assert 0.45 <= elapsed < 2.0


def test_offline_logged_once_then_back_online(caplog: pytest.LogCaptureFixture) -> None:
    """State changes are logged, repeats are not (a dead projector must not flood the log)."""
    state = {"up": False}

    def icmp(device: AvDevice, timeout: float) -> Fields:
        if not state["up"]:
            raise CheckError("no answer")
        return {"online": True}

    p = probe({"icmp": icmp, "tcp": fixed({"online": True}), "pjlink": fixed(PJLINK_FIELDS),
               "snmp": fixed({"online": True})})
    with caplog.at_level(logging.INFO, logger="agent.probes.av"):
        p.collect()
        p.collect()
        state["up"] = True
        p.collect()
        p.collect()
    assert [r.getMessage() for r in caplog.records] == [
        "av panel-301 (192.168.3.11, icmp): offline: no answer",
        "av panel-301 (192.168.3.11) answers again",
    ]


def test_icmp_not_permitted_gives_no_false_offline(caplog: pytest.LogCaptureFixture) -> None:
    """No ICMP permission is the agent's problem: no sample for that device, an error."""
    checkers = {"icmp": raising(IcmpPermissionError(permission_message(socket.AF_INET))),
                "tcp": fixed({"online": True}), "pjlink": fixed(PJLINK_FIELDS),
                "snmp": fixed({"online": True})}
    with caplog.at_level(logging.ERROR, logger="agent.probes.av"):
        samples = by_device(probe(checkers).collect())
    assert "panel-301" not in samples and len(samples) == 3
    assert any("CAP_NET_RAW" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("device", "match"),
    [
        ({"method": "tcp"}, "method tcp needs a port"),
        ({"method": "icmp", "port": 80}, "takes no port"),
        ({"method": "icmp", "password_env": "PJ"}, "only method pjlink uses a password"),
        ({"method": "pjlink", "community_env": "C"}, "only method snmp uses a community"),
        ({"method": "snmp"}, "needs community_env or community_file"),
        ({"method": "pjlink", "password_env": "MISSING"}, "MISSING is not set"),
        ({"method": "icmp", "device_type": "television"}, "device_type"),
        ({"method": "ping"}, "method"),
        ({"method": "icmp", "classroom": ""}, "classroom"),
        ({"method": "icmp", "name": "bad\\name"}, "name"),
    ],
)
def test_device_settings_refused(device: dict[str, object], match: str) -> None:
    """Method-specific keys, known types, secrets that resolve, tag-safe names."""
    base = {"name": "d", "classroom": "301", "device_type": "other", "host": "10.0.0.1"}
    with pytest.raises(ValidationError, match=match):
        settings(devices=[{**base, **device}])


def test_duplicate_device_names_refused() -> None:
    """Names are the device tag: they must be unique."""
    dev = {"name": "d", "classroom": "301", "device_type": "other", "host": "h",
           "method": "icmp"}
    with pytest.raises(ValidationError, match="duplicate device name 'd'"):
        settings(devices=[dev, dev])


def test_defaults_ports_secrets_hidden_and_build() -> None:
    """Default ports per method; secrets never in repr or dump; build() uses real checkers."""
    s = settings()
    ports = {d.name: d.effective_port for d in s.devices}
    assert ports == {"panel-301": 0, "pc-301": 3389, "proj-302": 4352, "spk-1": 161}
    assert "projector-secret" not in repr(s) and "projector-secret" not in str(s.model_dump())
    assert "community-secret" not in repr(s)
    assert (s.interval, s.device_timeout) == (60.0, 3.0)
    assert s.run_timeout(grace=1.0) == 4.0
    built = s.build()
    assert isinstance(built, AvProbe) and built.checkers == DEFAULT_CHECKERS


def test_importing_av_loads_no_heavy_library() -> None:
    """Config loading imports av: it must not pull pysnmp (or scapy)."""
    import subprocess
    import sys

    code = ("import sys, agent.probes.av; "
            "print(any(m.split('.')[0] in ('pysnmp', 'scapy') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
