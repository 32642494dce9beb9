"""Two collectors on the shared subscription, one stopped for good: the other gets everything.

Mosquitto hands each member of a share group its turn in strict rotation, connected or not
(``subs__shared_process`` in src/subs.c), so a stopped collector whose session outlives its
connection keeps taking its share, each message to wait for its agent's ack_timeout.  The
collector's session now ends with its connection: at once on a graceful stop or a kill (the
kernel closes the socket), after 1.5 x keepalive when the process or its host is frozen.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from common.wire import AgentIdentity, Topics
from tests.conftest import Services, influx_rows, start_collector_process, wait_until
from tests.integration.delivery_peers import (
    AckListener,
    RawPublisher,
    host_envelope,
    write_collector_yaml,
)
from tests.integration.test_delivery import T0

pytestmark = pytest.mark.integration

KEEPALIVE_S = 2.0  # the broker drops a silent collector after 1.5 x this (checked every ~6 s)
BOUND_S = 2.0  # publish -> stored for every message after the stop (agents wait 60 s by default)


def reject_points_per_collector(services: Services, db: str) -> dict[str, int]:
    """schoolmon_reject points per collector tag."""
    rows = influx_rows(services.influx_url, db,
                       "SELECT COUNT(count) FROM schoolmon_reject GROUP BY collector")
    return {str(r["collector"]): int(r["count"]) for r in rows}  # type: ignore[call-overload]


@pytest.mark.parametrize("how", ["sigterm", "sigkill", "sigstop", "sigterm-lasting-session"])
def test_stopped_collector_gets_no_more_messages(how: str, services: Services, influx_db: str,
                                                 topic_prefix: str, tmp_path: Path) -> None:
    """After one of two collectors stops (graceful, killed, frozen), every message published
    later is stored by the other within BOUND_S, resends never needed.  With a lasting
    session configured (1 h), a graceful stop still ends it (DISCONNECT with expiry 0)."""
    tag = topic_prefix.split("/", maxsplit=1)[0]
    procs = [start_collector_process(write_collector_yaml(
        tmp_path / f"c{i}.yaml", services.mqtt_port, topic_prefix,
        influx_url=services.influx_url, db=influx_db, client_id=f"{tag}-c{i}",
        keepalive=f"{KEEPALIVE_S}s",
        session_expiry="1h" if how.endswith("lasting-session") else "0s")) for i in (1, 2)]
    acks = AckListener(services.mqtt_port, topic_prefix)
    raw = RawPublisher(services.mqtt_port, "pub-" + tag)
    topics = Topics(topic_prefix)
    agents = [AgentIdentity("d", f"s{k}", f"a{k}") for k in range(10)]
    try:
        # Both are members: malformed messages come back as reject points from each.
        for i in range(20):
            raw.publish(topics.data(agents[0]), b"junk %d" % i)
        wait_until(lambda: sum(reject_points_per_collector(services, influx_db).values()) == 20,
                   20, "20 rejects stored")
        assert set(reject_points_per_collector(services, influx_db)) == {f"{tag}-c1", f"{tag}-c2"}

        stop_collector(procs[0], how)
        stopped = time.monotonic()
        # A frozen collector holds its share until the broker's keepalive check gives up on
        # it: publish through that window, and judge only what was published after it.
        broker_log = services.dir / "mosquitto.log"
        gone = f"Client {tag}-c1 has exceeded timeout"
        keys: list[tuple[str, int]] = []
        judged: list[tuple[str, int]] = []
        seq = 0
        settled = stopped if how != "sigstop" else None
        while len(judged) < 100:
            for who in agents:
                seq += 1
                raw.publish(topics.data(who), host_envelope(who, seq, T0 + seq), (who.agent, seq))
                keys.append((who.agent, seq))
                if settled is not None:
                    judged.append((who.agent, seq))
            if settled is None:
                assert time.monotonic() - stopped < 30, "the broker never dropped c1"
                if gone in broker_log.read_text():
                    settled = time.monotonic()
                    print(f"broker dropped the frozen collector {settled - stopped:.1f} s "
                          "after it froze")
                else:
                    time.sleep(0.05)  # pacing the publisher, not synchronisation
        wait_until(lambda: acks.count_acked(judged) == len(judged), 10,
                   f"the survivor to store all {len(judged)} messages")
    finally:
        raw.close()
        acks.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    latencies = [acks.acked[k] - raw.sent_at[k] for k in judged]
    lost_in_window = sum(1 for k in keys if k not in acks.acked)
    print(f"{how}: {len(judged)} messages after the stop, publish -> stored p50 "
          f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
          f"{lost_in_window} of {len(keys) - len(judged)} published before the broker noticed "
          "are left to the agents' resend")
    assert len(judged) >= 100
    assert max(latencies) < BOUND_S
    if how != "sigstop":
        assert lost_in_window == 0
    stored = influx_rows(services.influx_url, influx_db, "SELECT COUNT(uptime_s) FROM host")
    assert stored[0]["count"] == len(keys) - lost_in_window  # each once


def stop_collector(proc: subprocess.Popen[bytes], how: str) -> None:
    """Stop a collector process for good: SIGTERM (graceful), SIGKILL, or SIGSTOP (frozen)."""
    if how == "sigstop":
        proc.send_signal(signal.SIGSTOP)
        return
    proc.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
    proc.wait(10)
