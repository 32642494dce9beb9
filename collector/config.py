"""collector.yaml: broker, storage, inventory, policies and alert settings."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from collector.alerts.settings import AlertSettings
from collector.rules.settings import RulesSettings
from collector.storage import MAX_CONCURRENT_WRITES
from common.config import (
    Duration,
    DurationOrZero,
    MqttSettings,
    Strict,
    WithSecrets,
    load_model,
)


class CollectorMqtt(MqttSettings):
    """Broker settings plus the shared-subscription group."""

    username: str | None = "collector"
    share_group: str = Field(default="collectors", pattern=r"^[A-Za-z0-9_-]+$")
    client_id: str | None = None  # default: schoolmon-collector-<hostname>
    # 0: the collector's session (and its share of the group) ends with its connection.
    # Mosquitto hands each member of a share group its turn whether it is connected or not,
    # so a stopped collector with a lasting session would keep taking its share of the
    # messages, each to wait for the agent's ack_timeout.  Agents resend whatever is not
    # acked, so nothing needs the broker to keep a queue for a collector.
    session_expiry: DurationOrZero = 0.0
    # The broker notices a collector that died without closing its connection (host crash,
    # cable) after 1.5 x keepalive and only then stops routing it messages.
    keepalive: Duration = Field(default=10.0, ge=2.0)
    # Un-acked messages in flight to this collector: messages wait for the batched write, so
    # the window must hold more than one batch (5,000 points are ~1,700 classroom envelopes)
    # for the broker to keep sending while a batch is written.  1,000 capped one collector
    # at one window per write: ~4,000 small messages/s (bench/ingest_drain.py, issue 11).
    receive_maximum: int = Field(default=4000, ge=10, le=65535)

    def effective_client_id(self) -> str:
        """A stable id, unique among running collectors (it tags their reject points)."""
        return self.client_id or f"schoolmon-collector-{socket.gethostname()}"


class Influx1Storage(WithSecrets):
    """InfluxDB 1.x: POST /write with database and retention policy."""

    _secret_names: ClassVar[tuple[str, ...]] = ("password",)

    kind: Literal["influxdb1"]
    url: str = "http://127.0.0.1:8086"
    database: str = "schoolmon"
    retention_policy: str = "autogen"
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    timeout: Duration = 10.0


class Influx2Storage(WithSecrets):
    """InfluxDB 2.x/3.x (and VictoriaMetrics): /api/v2/write through influxdb-client."""

    _secret_names: ClassVar[tuple[str, ...]] = ("token",)

    kind: Literal["influxdb2"]
    url: str = "http://127.0.0.1:8086"
    org: str = "district"
    bucket: str = "schoolmon"
    token_env: str | None = None
    token_file: str | None = None
    timeout: Duration = 10.0
    # VictoriaMetrics answers 204 while the points are still in memory (a crash loses the last
    # ~10 s): "victoriametrics" makes each write durable (a snapshot) before it is acked.
    server: Literal["influxdb", "victoriametrics"] = "influxdb"


StorageSettings = Annotated[Influx1Storage | Influx2Storage, Field(discriminator="kind")]


class WriteSettings(Strict):
    """How the collector batches writes."""

    batch_points: int = Field(default=5000, ge=1, le=100_000)
    flush_interval: Duration = 0.5
    # Batches written at once: InfluxDB stores one (on its own cores) while the collector
    # assembles and sends the next; with one, each waited for the other (bench/ingest_drain.py).
    writers: int = Field(default=2, ge=1, le=MAX_CONCURRENT_WRITES - 1)
    max_retry_delay: Duration = 30.0
    queue_messages: int = Field(default=8000, ge=10)
    # Payload bytes received and not yet acked (queued or being written).  Past it, the
    # network thread waits briefly, then leaves messages to the agents' resend, except
    # resends of batches held here (checked on probation, at most one largest payload more:
    # collector/inflight.py).  At least the largest payload (256 KiB), so any one message
    # always fits.
    queue_bytes: int = Field(default=64 * 2**20, ge=256 * 1024)
    # The collector's own counters (queue, resends, shed messages, writes) are stored as a
    # ``collector_stats`` point this often (collector/measurements.py); 0: never.
    stats_interval: DurationOrZero = 60.0
    # A sample older than this (after clock correction) is refused as ``too_old``: no agent's
    # spool keeps one that long (spool.max_age, 14 days by default, plus a day in flight), so
    # it is a forgery or a broken clock rewriting history.  0: no bound (replays of recorded
    # data with old dates).
    max_sample_age: DurationOrZero = 15 * 86400.0


class ClockSettings(Strict):
    """Agents' wrong clocks (collector/clocks.py): estimated from every message, corrected."""

    # Offsets up to this are left alone (a right clock's samples are stored exactly as sent);
    # past it, the agent's timestamps are corrected, until the offset is back under half.
    tolerance: Duration = 120.0
    # The estimate is the least (receive - sent) over this window: long enough to hold a
    # message that crossed the link without waiting.
    window: Duration = 600.0
    # A new offset is applied when a message this much later agrees with it: one envelope
    # never moves an agent's data.  0 applies the first estimate at once.
    confirm_after: DurationOrZero = 20.0


# What a collector process does (docs/scaling.md, "Roles and shards"): ``ingest`` stores and
# acks in the share group; ``rules`` observes its districts' data without storing or acking and
# runs rules and alerts; ``all`` does both (one process for a district).
CollectorRole = Literal["all", "ingest", "rules"]
# A district id or an fnmatch glob over district ids ("gz-*"); checked against the inventory.
DistrictPattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-*?\[\]!]{1,64}$")]


class StandbySettings(Strict):
    """Two collectors of one shard: one active (rules, alerts), one waiting (collector/lease.py)."""

    enabled: bool = False
    # Names the lease: collectors with the same shard name (and topic prefix) form one pair.
    shard: str = Field(default="all", pattern=r"^[A-Za-z0-9_-]{1,64}$")


class CollectorConfig(Strict):
    """The whole collector.yaml."""

    role: CollectorRole = "all"
    districts: list[DistrictPattern] | None = Field(default=None, min_length=1)  # None: all
    standby: StandbySettings = StandbySettings()
    mqtt: CollectorMqtt = CollectorMqtt()
    storage: StorageSettings
    write: WriteSettings = WriteSettings()
    clocks: ClockSettings = ClockSettings()
    inventory: str | None = None
    policies: list[str] = []
    alerts: AlertSettings | None = None
    rules: RulesSettings = RulesSettings()

    @model_validator(mode="after")
    def _queue_holds_the_window(self) -> CollectorConfig:
        # The broker may send receive_maximum messages before an ack; a smaller queue would
        # shed the rest to the agents' resend on every busy second.
        if self.mqtt.protocol == "v5" and self.write.queue_messages < self.mqtt.receive_maximum:
            raise ValueError(
                f"write.queue_messages: {self.write.queue_messages} is below "
                f"mqtt.receive_maximum ({self.mqtt.receive_maximum}), the messages the broker "
                f"may send before an ack; raise it or lower mqtt.receive_maximum")
        return self


def load_collector_config(path: str | Path,
                          environ: Mapping[str, str] | None = None) -> CollectorConfig:
    """Read and validate collector.yaml; raises ConfigError."""
    return load_model(CollectorConfig, path, environ=environ)
