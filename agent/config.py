"""agent.yaml: who the agent is, where it publishes, its spool and its probes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, model_validator

from agent.probes import ProbeSettings
from common.config import Duration, Identifier, MqttSettings, Strict, load_model
from common.timetable import Timetable
from common.wire import AgentIdentity


class AgentSection(Strict):
    """The agent's identity, as it appears in topics."""

    id: Identifier
    school: Identifier
    district: Identifier


class SpoolSettings(Strict):
    """The on-disk queue of batches not yet acknowledged by a collector."""

    path: str = "/var/lib/schoolmon/spool.db"
    max_mb: float = Field(default=64.0, gt=0)
    max_age: Duration = 14 * 86400.0


class PublishSettings(Strict):
    """Delivery tuning; the defaults suit a school gateway."""

    ack_timeout: Duration = 60.0  # resend a batch the collector has not acked by then
    # Each further resend of one batch waits twice as long as the last, up to this.
    resend_max: Duration = 600.0
    max_inflight: int = Field(default=20, ge=1, le=1000)
    flush_interval: Duration = 1.0
    reconnect_min: Duration = 1.0
    reconnect_max: Duration = 120.0


class AgentConfig(Strict):
    """The whole agent.yaml."""

    agent: AgentSection
    mqtt: MqttSettings = MqttSettings()
    spool: SpoolSettings = SpoolSettings()
    publish: PublishSettings = PublishSettings()
    timetable: Timetable | None = None
    probes: list[ProbeSettings] = []

    @model_validator(mode="after")
    def _unique_probe_names(self) -> AgentConfig:
        names = [p.instance_name(p.type) for p in self.probes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"probe names must be unique; give 'name:' to {', '.join(dupes)}")
        if any(p.school_hours_only for p in self.probes) and self.timetable is None:
            raise ValueError("school_hours_only needs a timetable section")
        return self

    @property
    def identity(self) -> AgentIdentity:
        """district/school/agent for topics and envelopes."""
        return AgentIdentity(self.agent.district, self.agent.school, self.agent.id)


def load_agent_config(path: str | Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and validate agent.yaml; raises ConfigError."""
    return load_model(AgentConfig, path, environ=environ)
