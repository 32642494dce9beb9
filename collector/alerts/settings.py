"""The ``alerts:`` section of collector.yaml: where mails go and when (``AlertSettings``, timed
like an Alertmanager route), and what fires (``alerts.rules``: conditions and thresholds)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, field_validator, model_validator

from common.config import Duration, Strict, WithSecrets
from common.timetable import TimeZoneName
from common.vocab import AgentRole

AlertName = Literal[
    "agent_offline", "internet_down", "bandwidth_low", "device_down", "projector_error",
    "lamp_hours", "wifi_poor", "spool_dropping", "storage_refusing", "agent_clock_wrong",
]
ALERT_NAMES: Final[tuple[AlertName, ...]] = (
    "agent_offline", "internet_down", "bandwidth_low", "device_down", "projector_error",
    "lamp_hours", "wifi_poor", "spool_dropping", "storage_refusing", "agent_clock_wrong",
)
_CLOCK_RANGE_RE: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_MATCHER_RE: Final = re.compile(r"^([a-z_]+)(=|!=)(.+)$")


def parse_clock_range(value: str) -> tuple[dt.time, dt.time]:
    """'22:00-07:00' -> (22:00, 07:00); the range may wrap past midnight."""
    m = _CLOCK_RANGE_RE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a range like '22:00-07:00'")
    start = dt.time(int(m.group(1)), int(m.group(2)))
    end = dt.time(int(m.group(3)), int(m.group(4)))
    if start == end:
        raise ValueError(f"{value!r}: start and end are the same")
    return start, end


def parse_matcher(value: str) -> tuple[str, bool, str]:
    """'role!=gateway' -> ('role', False, 'gateway'); True means equal."""
    m = _MATCHER_RE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a matcher like 'role=gateway' or 'role!=gateway'")
    return m.group(1), m.group(2) == "=", m.group(3)


class BandwidthTargets(Strict):
    """Download Mbit/s a school of each category should measure (policy-targets.md)."""

    urban: float = Field(default=100.0, gt=0)
    rural: float = Field(default=10.0, gt=0)
    teaching_point: float = Field(default=4.0, gt=0)

    def for_category(self, category: str) -> float:
        """The target of an inventory category (urban when unknown)."""
        return {"rural": self.rural, "teaching_point": self.teaching_point}.get(
            category, self.urban)


class InhibitRule(Strict):
    """While a ``source`` alert fires at a school, that school's ``target`` alerts are muted."""

    source: list[AlertName] = Field(min_length=1)
    source_match: list[str] = []
    target: list[AlertName] = Field(min_length=1)
    target_match: list[str] = []

    @field_validator("source_match", "target_match")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_matcher(item)
        return value


_CONSEQUENCES: Final[list[AlertName]] = [
    "device_down", "projector_error", "lamp_hours", "wifi_poor", "bandwidth_low",
]


def _default_inhibit() -> list[InhibitRule]:
    # A school cut off from the network makes its devices, Wi-Fi scans, speed tests and
    # classroom agents look broken too: one mail about the cause, not thirty about effects.
    return [
        InhibitRule(source=["internet_down"], target=[*_CONSEQUENCES, "agent_offline"],
                    target_match=["role!=gateway"]),
        InhibitRule(source=["agent_offline"], source_match=["role=gateway"],
                    target=[*_CONSEQUENCES, "internet_down", "agent_offline"],
                    target_match=["role!=gateway"]),
    ]


# Keys that older collector.yaml files had under alerts.rules.
_MOVED_TO_ALERTS = ("group_interval", "resolve_timeout")


class AlertRulesSettings(Strict):
    """What fires and when: conditions and their thresholds (timing is ``AlertSettings``)."""

    enabled: list[AlertName] = list(ALERT_NAMES)
    # agent_offline
    offline_after: Duration = 600.0
    offline_any_time_roles: list[AgentRole] = [
        "gateway", "server"]
    # bandwidth_low
    bandwidth_target_mbps: BandwidthTargets = BandwidthTargets()
    bandwidth_consecutive_tests: int = Field(default=3, ge=1, le=100)
    # device_down
    device_down_grace: Duration = 600.0
    # lamp_hours
    lamp_hours_max: int = Field(default=3000, ge=1)
    # wifi_poor
    wifi_poor_dbm: float = Field(default=-75.0, le=0)
    wifi_poor_for: Duration = 900.0
    school_ssids: list[str] = []  # empty: every SSID the wifi probes report
    # spool_dropping: firing while dropped_total rose within this window
    spool_drop_window: Duration = 3600.0
    # storage_refusing: the collector's storage has stored nothing for this long
    storage_refusing_after: Duration = 300.0
    quiet_hours: str | None = None  # e.g. "22:00-07:00": mails held and sent after
    quiet_hours_timezone: TimeZoneName = "Asia/Shanghai"
    inhibit: list[InhibitRule] = Field(default_factory=_default_inhibit)
    dashboard_path: str = "/d/schoolmon-school?var-school={school}"
    smtp_timeout: Duration = 30.0

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _MOVED_TO_ALERTS:
                if key in data:
                    raise ValueError(f"{key} is a notification timing: write it as "
                                     f"alerts.{key} (beside group_wait), not alerts.rules.{key}")
        return data

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None:
            parse_clock_range(value)
        return value

    @field_validator("dashboard_path")
    @classmethod
    def _dashboard(cls, value: str) -> str:
        if "{school}" not in value:
            raise ValueError("must contain {school}")
        return value


Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class SmtpSettings(WithSecrets):
    """Outgoing mail server for alerts."""

    _secret_names: ClassVar[tuple[str, ...]] = ("password",)

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False  # implicit TLS (port 465)
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    ca_file: str | None = None


class AlertSettings(Strict):
    """Alert emails to district IT."""

    smtp: SmtpSettings
    from_: Email = Field(alias="from")
    to: list[Email] = Field(min_length=1)
    language: Literal["zh-CN", "en"] = "zh-CN"
    # Notification timing, one group as in an Alertmanager route (collector/alerts/notifier.py)
    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 4 * 3600.0
    resolve_timeout: Duration = 86400.0
    send_resolved: bool = True
    state_path: str = "/var/lib/schoolmon/alerts.db"
    dashboard_url: str | None = None
    rules: AlertRulesSettings = AlertRulesSettings()
