"""agent.yaml: who the agent is, where it publishes, its spool and its probes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, model_validator

from agent.probes import ProbeSettings
from common.config import (
    Duration,
    DurationOrZero,
    Identifier,
    MqttSettings,
    Strict,
    load_model,
    require_unique,
    split_host_port,
)
from common.timetable import Timetable
from common.vocab import AgentRole
from common.wire import AgentIdentity

# publish.linger when not set, by agent.role (docs/reliability.md "Fewer messages" says why):
# a gateway's reach (30 s) and iface (10 s) samples feed the live dashboards, so it waits at
# most one reach interval; a classroom PC's fastest probes run every 60 s and its alerts wait
# device_down_grace (10 min), so one interval of waiting costs nothing a rule can see.  An
# agent.yaml without a role keeps sending each batch at once, as before the setting existed.
DEFAULT_LINGER_S: dict[AgentRole | None, float] = {"gateway": 30.0, "classroom_pc": 60.0,
                                                   "server": 30.0, None: 0.0}


class AgentSection(Strict):
    """The agent's identity, as it appears in topics."""

    id: Identifier
    school: Identifier
    district: Identifier
    # What the agent runs on (as in the inventory): chooses publish.linger's default.
    role: AgentRole | None = None


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
    # Batches not yet sent wait up to this long (from the first one) to go out merged in one
    # envelope; 0 sends each probe run's batch at once. Unset: by agent.role (DEFAULT_LINGER_S).
    # At most 10 min: past rules.stale_after (15 min) an agent would look stale between sends.
    linger: DurationOrZero | None = Field(default=None, le=600)
    # While connected, the oldest QoS 1 message without a PUBACK for this long drops the
    # connection (to the next of mqtt.servers): a broker that keeps the socket open but stores
    # nothing must not stall the agent (agent/link.py).  Above a broker's slowest honest store.
    puback_timeout: Duration = 30.0
    reconnect_min: Duration = 1.0
    reconnect_max: Duration = 120.0


class AgentMqttSettings(MqttSettings):
    """The collector's MqttSettings plus the agent's list of brokers (agent/link.py)."""

    # A cluster's nodes, "host:port" ("[v6]:port"; without a port, port: applies), tried in
    # turn: on a lost or failed connection, and when PUBACKs stop (publish.puback_timeout),
    # the agent moves to the next.  Instead of host:, not beside it.
    servers: list[str] = []

    @model_validator(mode="after")
    def _servers(self) -> AgentMqttSettings:
        if self.servers and "host" in self.model_fields_set:
            raise ValueError("servers: give the brokers there, or host:, not both")
        require_unique((f"{h}:{p}" for h, p in self.server_list()), "server")
        return self

    def server_list(self) -> list[tuple[str, int]]:
        """(host, port) of each broker, in order; [(host, port)] without ``servers``."""
        if not self.servers:
            return [(self.host, self.port)]
        out = []
        for entry in self.servers:
            host, port = split_host_port(entry)  # ValueError: a config error with its path
            out.append((host, self.port if port is None else port))
        return out


class AgentConfig(Strict):
    """The whole agent.yaml."""

    agent: AgentSection
    mqtt: AgentMqttSettings = AgentMqttSettings()
    spool: SpoolSettings = SpoolSettings()
    publish: PublishSettings = PublishSettings()
    timetable: Timetable | None = None
    probes: list[ProbeSettings] = []

    @model_validator(mode="after")
    def _unique_probe_names(self) -> AgentConfig:
        require_unique((p.instance_name(p.type) for p in self.probes), "probe name",
                       "; give each of them a 'name:'")
        if any(p.school_hours_only for p in self.probes) and self.timetable is None:
            raise ValueError("school_hours_only needs a timetable section")
        return self

    @property
    def linger_s(self) -> float:
        """publish.linger, or the default of the agent's role."""
        if self.publish.linger is not None:
            return self.publish.linger
        return DEFAULT_LINGER_S[self.agent.role]

    @property
    def identity(self) -> AgentIdentity:
        """district/school/agent for topics and envelopes."""
        return AgentIdentity(self.agent.district, self.agent.school, self.agent.id)


def load_agent_config(path: str | Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and validate agent.yaml; raises ConfigError."""
    return load_model(AgentConfig, path, environ=environ)
