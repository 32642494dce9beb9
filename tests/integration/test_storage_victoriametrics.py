"""VictoriaMetrics as the store: its one refusal (401), and durability before the ack
(SIGKILL under load: every acked sample is still there after the restart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Services, start_collector_process, wait_until
from tests.integration.storage_scenario import (
    CountingProbe,
    Victoria,
    collector_yaml,
    drain_and_count,
    logs,
    record_acks,
    start_agent,
    stop_process,
    vm_storage,
)

# Long fault scenarios: `make test-faults` (README), run by CI beside `make test`.
pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    """A VictoriaMetrics of this test (stopped at the end)."""
    (tmp_path / "vm").mkdir()
    vm = Victoria(tmp_path / "vm")
    yield vm
    if vm.proc is not None and vm.proc.poll() is None:
        vm.kill()


def test_victoriametrics_refusing_auth_then_open_loses_nothing(
        victoria: Victoria, services: Services, topic_prefix: str, tmp_path: Path) -> None:
    """VictoriaMetrics behind -httpAuth answers 401: not acked, logged; opened: all stored."""
    victoria.start("-httpAuth.username=vm", "-httpAuth.password=secret")
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix,
                         vm_storage(victoria, "victoriametrics"))
    collector = start_collector_process(cfg)
    probe = CountingProbe()
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe)
    try:
        wait_until(lambda: "(401)" in logs(cfg) and len(probe.produced) >= 15, 30,
                   "the refusal logged")
        assert logs(cfg).count("VictoriaMetrics refused the credentials (401)") == 1
        assert agent.publisher.acked_batches == 0
        victoria.kill()
        victoria.start()
        stored = drain_and_count(agent, probe, victoria.stored)
        assert stored == sorted(probe.produced)
        print(f"vm auth: produced {len(probe.produced)}, stored {len(stored)}")
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)


@pytest.mark.parametrize("server", ["victoriametrics", "influxdb"])
def test_victoriametrics_sigkilled_under_load_keeps_every_acked_sample(
        victoria: Victoria, services: Services, topic_prefix: str, tmp_path: Path,
        server: str) -> None:
    """SIGKILL under load: with the snapshot barrier every acked sample survives (and all land
    after the restart); without it (server: influxdb) acked samples are lost."""
    victoria.start()
    cfg = collector_yaml(tmp_path, services.mqtt_port, topic_prefix, vm_storage(victoria, server))
    collector = start_collector_process(cfg)
    probe = CountingProbe(per_collect=10)
    agent, stop, thread = start_agent(tmp_path, services.mqtt_port, topic_prefix, probe,
                                      interval=0.1)  # 100 samples/s
    acked = record_acks(agent)
    try:
        wait_until(lambda: len(acked) >= 300, 30, "samples acked")
        victoria.kill()
        wait_until(lambda: "unreachable" in logs(cfg), 15, "the collector to see it down")
        acked_at_kill = set(acked)
        victoria.start()
        after_restart = set(victoria.stored())
        lost = acked_at_kill - after_restart
        print(f"vm kill ({server}): acked at kill {len(acked_at_kill)}, in VM after restart "
              f"{len(after_restart)}, acked and lost {len(lost)}")
        if server == "influxdb":
            assert lost, "VictoriaMetrics kept every acked sample without the barrier"
            return
        assert not lost, f"{len(lost)} acked samples lost"
        stored = drain_and_count(agent, probe, victoria.stored)
        assert stored == sorted(probe.produced)  # produced = stored, each once
        print(f"vm kill: produced {len(probe.produced)}, stored {len(stored)}")
    finally:
        stop.set()
        thread.join(10)
        stop_process(collector)
