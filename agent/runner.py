"""Wires an agent together from its config: probes -> scheduler -> spool -> publisher."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from agent.config import AgentConfig
from agent.probes import build_probe
from agent.probes.base import Probe, wall_clock_ms
from agent.probes.speedtest import SpeedtestSettings
from agent.publisher import Publisher
from agent.scheduler import ProbeScheduler, ScheduledProbe
from agent.spool import Spool
from common.wire import Sample

log = logging.getLogger(__name__)

AGENT_SAMPLE_INTERVAL = 60.0
# On a clean stop, how long the publisher may wait for the acks of the batches it flushed.
FLUSH_WAIT_S = 5.0


def installed_version() -> str:
    """The installed schoolmon release (the wheel's metadata, from schoolmon.__version__)."""
    # Read from the distribution, not imported from the schoolmon package: imports go downward.
    try:
        return version("schoolmon")
    except PackageNotFoundError:
        return "unknown"


def config_hash(config: AgentConfig) -> str:
    """A short fingerprint of the validated config: which agents run the same agent.yaml."""
    # model_dump never holds resolved secrets (common/config.py WithSecrets), only their
    # *_env / *_file names, so the fingerprint reveals nothing secret.
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]


class AgentHealthProbe:
    """The ``agent`` sample: the agent's own memory, CPU, spool and error counters.

    It also carries what the fleet view needs: the release, the config's fingerprint and when
    this process started (the retained status stays exactly ``online``/``offline``, which every
    collector version accepts).
    """

    def __init__(self, spool: Spool, errors: Callable[[], int], *, release: str = "unknown",
                 config_fingerprint: str = "", started_s: float | None = None) -> None:
        self.spool = spool
        self.errors = errors
        self.release = release
        self.config_fingerprint = config_fingerprint
        self.started_s = round(time.time() if started_s is None else started_s)
        self._process: object | None = None

    def collect(self) -> list[Sample]:
        """Measure the agent itself."""
        import psutil

        if self._process is None:
            self._process = psutil.Process()
        proc = self._process
        assert isinstance(proc, psutil.Process)
        stats = self.spool.stats()
        return [Sample("agent", wall_clock_ms(), {}, {
            "rss_mb": round(proc.memory_info().rss / 2**20, 2),
            "cpu_pct": proc.cpu_percent(interval=None),
            "spool_depth": stats.depth,
            "spool_bytes": stats.bytes,
            "dropped_total": stats.dropped_total,  # every sample lost, rejected ones included
            "rejected_total": stats.rejected_total,  # of those, refused by a collector
            "probe_errors": self.errors(),
            "version": self.release,
            "config_hash": self.config_fingerprint,
            "started_s": self.started_s,
        })]


def build_probes(config: AgentConfig) -> list[ScheduledProbe]:
    """One scheduled probe per entry of ``probes:``."""
    scheduled = []
    for configured in config.probes:
        settings = configured
        if isinstance(settings, SpeedtestSettings) and settings.state_file is None:
            # The day's bytes and the back-off survive a restart by default (a metered link
            # must not pay twice): kept beside the spool, which is the agent's own state dir.
            name = settings.instance_name(settings.type)
            settings = settings.model_copy(update={
                "state_file": str(Path(config.spool.path).parent / f"{name}.state.json")})
        probe: Probe = build_probe(settings)
        interval = settings.interval
        scheduled.append(ScheduledProbe(
            name=settings.instance_name(settings.type),
            probe=probe,
            interval=interval,
            timeout=settings.run_timeout(),
            jitter=settings.jitter if settings.jitter is not None else interval * 0.1,
            school_hours_only=settings.school_hours_only,
        ))
    return scheduled


class Agent:
    """A running agent."""

    def __init__(self, config: AgentConfig, probes: list[ScheduledProbe] | None = None) -> None:
        self.config = config
        self.spool = Spool(config.spool.path, int(config.spool.max_mb * 2**20),
                           config.spool.max_age)
        probes = build_probes(config) if probes is None else probes
        health = AgentHealthProbe(
            self.spool, lambda: self.scheduler.probe_errors + self.scheduler.spool_errors,
            release=installed_version(), config_fingerprint=config_hash(config))
        probes = [*probes, ScheduledProbe("agent", health, AGENT_SAMPLE_INTERVAL, 10.0, 5.0)]
        self.scheduler = ProbeScheduler(probes, self.spool, config.timetable)
        self.publisher = Publisher(config, self.spool)

    def run(self, stop: threading.Event) -> None:
        """Measure and deliver until ``stop`` is set."""
        self.spool.open()
        self.publisher.start()
        self.scheduler.start()
        try:
            while not stop.is_set():
                self.scheduler.tick()
                self.publisher.pump()
                stop.wait(0.2)
        finally:
            self.scheduler.shutdown()
            self.publisher.flush(FLUSH_WAIT_S)  # nothing lingers past a clean stop
            self.publisher.stop()
            self.spool.close()

    def run_once(self, timeout: float) -> bool:
        """Run every probe once, deliver everything spooled; True when all was acked in time."""
        self.spool.open()
        deadline = time.monotonic() + timeout
        try:
            self.publisher.start()
            if not self.scheduler.run_all_once(timeout):
                log.error("not every probe finished within %.0fs", timeout)
            while time.monotonic() < deadline:
                self.publisher.pump(flush=True)  # --once: nothing to wait for
                if self.spool.stats().depth == 0:
                    return True
                time.sleep(0.05)
            stats = self.spool.stats()
            log.error("%d batches not acknowledged within %.0fs; they stay in %s",
                      stats.depth, timeout, self.config.spool.path)
            return False
        finally:
            self.scheduler.shutdown()
            self.publisher.stop()
            self.spool.close()
