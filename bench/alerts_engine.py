"""Alert engine cost on the collector's path, for a province-size inventory.

The engine's observer runs in the collector's writer thread, after each stored message, so its
cost per sample adds to the collector's (~76k samples/s on one core, docs/benchmarks.md). This
measures, for 10,000 schools x 30 classrooms (a gateway per school: 30 projector checks, 2 Wi-Fi
radios per classroom, reach, WAN iface and agent samples):
1. observe: samples/s through ``AlertEngine.observe`` (all healthy: the common case);
2. tick: evaluation of every condition plus the notifier, with 1 % of schools in a storm
   (uplink down, every projector down) - what a tick costs and how long it holds the lock;
3. resident memory of the tracker state.
Writes docs/benchmarks.md.  Run: .venv/bin/python -m bench.alerts_engine
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.report import machine, write_section
from collector.alerts.engine import AlertEngine
from collector.alerts.settings import AlertRulesSettings, AlertSettings
from collector.inventory import Inventory
from common.wire import AgentIdentity, Sample

SCHOOLS = 10_000
ROOMS = 30
STORM = SCHOOLS // 100
T0 = dt.datetime(2026, 5, 12, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def inventory() -> Inventory:
    """SCHOOLS schools with ROOMS classrooms and a projector in each."""
    return Inventory.model_validate({
        "districts": [{"id": "d", "name": "D"}],
        "schools": [{"id": f"s{i}", "name": f"School {i}", "district": "d",
                     "category": "urban", "classes": ROOMS,
                     "classrooms": [{"id": f"r{r}"} for r in range(ROOMS)],
                     "devices": [{"id": f"p{r}", "classroom": f"r{r}", "type": "projector"}
                                 for r in range(ROOMS)]} for i in range(SCHOOLS)],
        "agents": [{"id": f"s{i}-gw", "school": f"s{i}"} for i in range(SCHOOLS)],
    })


def school_samples(ts_ms: int, healthy: bool) -> list[Sample]:
    """One minute of a school's samples."""
    samples = [Sample("av", ts_ms, {"device": f"p{r}", "classroom": f"r{r}",
                                    "device_type": "projector"},
                      {"online": healthy, "lamp_hours": 1200, "err_fan": 0, "err_lamp": 0})
               for r in range(ROOMS)]
    samples += [Sample("wifi", ts_ms, {"classroom": f"r{r}", "ssid": "School",
                                       "bssid": f"00:11:22:33:{r:02x}:0{b}"},
                       {"rssi_dbm": -55.0 - b}) for r in range(ROOMS) for b in range(2)]
    samples += [Sample("reach", ts_ms, {"target": t, "target_role": t, "method": "tcp"},
                       {"up": healthy}) for t in ("internet", "district")]
    samples += [Sample("iface", ts_ms, {"iface": "eth0", "role": "wan"}, {"up": True}),
                Sample("agent", ts_ms, {}, {"rss_mb": 30.0, "dropped_total": 0})]
    return samples


def rss_mb() -> float:
    """Resident memory now (not the peak)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    """Measure and write the section."""
    state = Path(tempfile.mkdtemp()) / "alerts.db"
    settings = AlertSettings.model_validate({
        "smtp": {"host": "127.0.0.1", "port": 1}, "from": "a@d.example", "to": ["b@d.example"],
        "state_path": str(state)})
    clock_now = [T0]
    # The healthy schools report once here; keep them from going silent meanwhile.
    rules = AlertRulesSettings(offline_after=7200.0)
    engine = AlertEngine(settings, inventory(), rules, clock=lambda: clock_now[0])
    batches = [(AgentIdentity("d", f"s{i}", f"s{i}-gw"), school_samples(int(T0 * 1000), True))
               for i in range(SCHOOLS)]
    total = sum(len(s) for _, s in batches)
    rss_before = rss_mb()
    start = time.perf_counter()
    for who, samples in batches:
        engine.observe(who, samples)
    observe_s = time.perf_counter() - start
    rss_after = rss_mb()
    del batches

    later = T0 + 660
    clock_now[0] = later
    for minute in (0, 11):  # two rounds 11 min apart: projectors past their 10 min grace
        for i in range(STORM):
            engine.observe(AgentIdentity("d", f"s{i}", f"s{i}-gw"),
                           school_samples(int((T0 + minute * 60) * 1000), False))
    start = time.perf_counter()
    evaluation = engine.tracker.evaluate(int(later * 1000))
    evaluate_s = time.perf_counter() - start
    start = time.perf_counter()
    notes = engine.notifier.tick(int(later * 1000), evaluation, quiet=False)
    first_tick_s = time.perf_counter() - start
    start = time.perf_counter()
    notes = engine.notifier.tick(int((later + 30) * 1000),
                                 engine.tracker.evaluate(int((later + 30) * 1000)), quiet=False)
    mail_tick_s = time.perf_counter() - start
    start = time.perf_counter()
    engine.notifier.tick(int((later + 60) * 1000),
                         engine.tracker.evaluate(int((later + 60) * 1000)), quiet=False)
    steady_tick_s = time.perf_counter() - start
    engine.close()

    firing = len(evaluation.firing)
    lines = [
        "## Alert engine (`bench/alerts_engine.py`)", "",
        f"{machine()}. {SCHOOLS:,} schools x {ROOMS} classrooms ({SCHOOLS * ROOMS:,} projectors, "
        f"{SCHOOLS * ROOMS * 2:,} Wi-Fi radios), one message per school of "
        f"{total // SCHOOLS} samples. Load average during the run: "
        f"{os.getloadavg()[0]:.1f} (the cores are shared).", "",
        "| figure | value |", "|---|---|",
        f"| observe, all healthy ({total:,} samples) | {total / observe_s:,.0f} samples/s "
        f"({observe_s:.2f} s) |",
        f"| tracker state, resident memory | ~{rss_after - rss_before:,.0f} MB |",
        f"| evaluate all conditions ({STORM} schools in a storm: {firing:,} alerts firing) "
        f"| {evaluate_s * 1000:,.0f} ms |",
        f"| notifier, first tick ({firing:,} new alerts written) | {first_tick_s * 1000:,.0f} ms |",
        f"| evaluate + notifier, group_wait over ({len(notes)} mails rendered, queued) | "
        f"{mail_tick_s * 1000:,.0f} ms |",
        f"| evaluate + notifier, steady tick (nothing due) | {steady_tick_s * 1000:,.0f} ms |",
    ]
    body = "\n".join(lines) + "\n"
    print(body)
    write_section("alerts_engine", body)


if __name__ == "__main__":
    main()
